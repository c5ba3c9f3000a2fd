"""``python -m grader device-check``: native FP8/FP4 paths against the emulated references.

Lanes, chosen by ``reference.torch_native_formats`` (what this PyTorch runs natively; the
device line also reports ``reference.hardware_formats``, what the silicon has) (DESIGN §3):

* ``cpu`` -- always: reference casts against torch's CPU float8 casts for every fp16 and
  bf16 bit pattern, FP8 scaled matmul on CPU against the emulated product, the notebook's
  environment table against the reference table, and every lab's canary; a lab adds lanes' checks of its own (``Lab.lanes``: lab321
  compares its notebook's environment table with the reference table).
* ``fp8-native`` -- compute capability >= 8.9 (Ada, Hopper, Blackwell): the same cast sweep
  with CUDA's native casts, the reference quantizers on CUDA against the same on CPU (every
  format and option, bit for bit), ``torch._scaled_mm`` FP8 matmul (both ``use_fast_accum``
  modes) against the emulated product within the accumulator bound of the architecture,
  and the model solution graded with CUDA tensors must score full marks as on CPU.
* ``fp4-native`` -- 10.x and 12.x (Blackwell, DGX Spark): NVFP4 block-scaled matmul through
  ``torch._scaled_mm`` (float4_e2m1fn_x2 with swizzled E4M3 block scales) against the
  emulated product, and the packed FP4 codes against torchao's packing.

Every check that compares two results also checks one of them against the expected value
(a bound from first principles, an independently computed scale, full marks), so two equally
broken results cannot pass. Measurements a lane makes on real hardware are printed after its
line ("measured: ..."), ready to be recorded.

Fairness: every graded check runs on CPU inputs; the hardware lanes only check that the
references and the hardware agree, so no point depends on the machine.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

import reference as R

# ---- Matmul tolerances ---------------------------------------------------------------------
# A scaled matmul of exactly representable operands differs from the float64 product of the
# dequantized operands only by accumulation rounding. Measure: err = max|got - want| / max|want|.
#
# CPU (FP32 accumulation throughout): Higham's deterministic bound gamma_K ~ K * 2**-24
# (Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1). Measured 4.1e-7 at K=128
# (bound 7.6e-6).
#
# CUDA tensor cores: FP8 MMA on Hopper accumulates with about 14 significand bits (DeepSeek-V3
# Technical Report, arXiv:2412.19437, §3.3.2, "limited to retaining around 14 bits"), so each
# addition into the tensor-core accumulator can lose up to 2**-13 of the running sum
# (truncation). With use_fast_accum=False cuBLAS promotes the partial sums to FP32 every
# N_c = 128 elements of K (the interval DeepSeek-V3 uses; the H200 errors shrinking with K
# confirm periodic promotion); with use_fast_accum=True nothing is promoted. Model: n
# elements accumulated at 2**-13 per addition, errors of random sign, relative to the largest
# output: 2**-13 * sqrt(n), plus the FP32 part K * 2**-24:
#     rtol = 2**-(p-1) * sqrt(n) + K * 2**-24,   n = K (fast accum) or min(K, N_c) (promoted)
# H200 (torch._scaled_mm e4m3 x e4m3 -> fp32), measured / bound:
#     promoted:    K=128 2.4e-4 / 1.39e-3 (5.8x)   K=1024 1.7e-4 / 1.44e-3 (8.5x)
#                  K=8192 1.3e-4 / 1.87e-3 (14x)
#     fast accum:  K=1024 1.2e-3 / 3.97e-3 (3.3x)  K=8192 1.4e-3 / 1.15e-2 (8.2x)
# A model counting 32-element WGMMA k-steps instead (sqrt(K/32)) is contradicted by the fast
# accumulation at K=1024 (6.9e-4 < 1.2e-3 measured); the per-element count above is the
# simplest one every measurement satisfies. Any real bug (a wrong scale, a wrong layout, a
# transposed operand) gives errors of 1e-2 to 1.
#
# major -> (accumulator significand bits p, FP32 promotion interval N_c, where the numbers come from)
ACCUMULATOR = {
    8: (14, 128, "assumed equal to Hopper's: not measured on Ada (8.9)"),
    9: (14, 128, "DeepSeek-V3 §3.3.2; measured on an H200 (see above)"),
    10: (14, 128, "assumed equal to Hopper's: not measured on Blackwell (10.x)"),
    12: (14, 128, "assumed equal to Hopper's: not measured on RTX 50 / DGX Spark (12.x)"),
}
FP32_UNIT = 2.0 ** -24


def matmul_rtol(k: int, capability: Optional[tuple[int, int]], fast_accum: bool = False) -> float:
    """Bound on max|got - want| / max|want| for a K-deep scaled matmul (see the model above).

    ``capability=None`` is the CPU (FP32 accumulation, exact-ish); an unknown GPU
    architecture gets Hopper's accumulator."""
    if capability is None:
        return k * FP32_UNIT
    bits, interval, _ = ACCUMULATOR.get(int(capability[0]), ACCUMULATOR[9])
    n = k if fast_accum else min(k, interval)
    return 2.0 ** -(bits - 1) * math.sqrt(n) + k * FP32_UNIT


# The fp4-native lane has not run on Blackwell hardware yet. When a run on a 10.x or 12.x GPU
# passes, record its "measured:" lines in the README and set this to e.g.
# "2026-01-31, NVIDIA B200 (10.0), torch 2.9.0+cu128".
FP4_LANE_FIRST_RUN: Optional[str] = None

NOTES: list[str] = []  # measurements of the running check, printed after the lane's line


def _note(text: str) -> None:
    NOTES.append(text)


@dataclass
class LaneResult:
    name: str
    status: str  # "passed", "FAILED", "skipped", "would run"
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.status == "passed":
            return f"lane {self.name}: ran {self.checks} checks, all passed"
        if self.status == "FAILED":
            return f"lane {self.name}: FAILED: " + "; ".join(self.failures)
        if self.status == "would run":
            return f"lane {self.name}: would run on this capability ({self.reason})"
        return f"lane {self.name}: skipped: {self.reason}"


def plan(capability: Optional[tuple[int, int]], has_cuda: bool,
         torch_version: Optional[str] = None) -> dict[str, tuple[bool, str]]:
    """Which lanes run for a capability: name -> (runs, reason).

    Chosen by what this PyTorch runs natively (``torch_version`` as for
    ``reference.torch_native_formats``); the reasons name what the hardware has."""
    native = R.torch_native_formats(capability, torch_version)
    hardware = R.hardware_formats(capability)
    where = "no CUDA GPU on this machine" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
    arch = R.arch_name(capability)
    out = {"cpu": (True, "always")}
    if "fp8_e4m3fn" in native:
        out["fp8-native"] = (True, f"FP8 tensor cores ({arch})")
    elif "fp8_e4m3fn" in hardware:
        version = torch_version or torch.__version__
        out["fp8-native"] = (False, f"{arch} has FP8 tensor cores, but PyTorch {version} "
                                    "has no native FP8 matmul (torch._scaled_mm)")
    else:
        out["fp8-native"] = (False, f"needs compute capability >= 8.9 (Ada, Hopper, Blackwell); {where}")
    first = f"first run on Blackwell hardware: {FP4_LANE_FIRST_RUN}" if FP4_LANE_FIRST_RUN \
        else "not yet run on Blackwell hardware"
    if "nvfp4" in native:
        out["fp4-native"] = (True, f"FP4 tensor cores ({arch}); {first}")
    elif "nvfp4" in hardware:
        version = torch_version or torch.__version__
        out["fp4-native"] = (False, f"{arch} has NVFP4 tensor cores, but PyTorch {version} "
                                    "(or its CUDA toolkit, < 12.8) has no native NVFP4 matmul")
    else:
        out["fp4-native"] = (False, f"needs compute capability 10.x or 12.x (Blackwell, DGX Spark); {where}")
    if not has_cuda:
        out = {k: (runs, reason + " -- simulated, nothing runs on a GPU here") if k != "cpu" and runs else (runs, reason)
               for k, (runs, reason) in out.items()}
    return out


def _all_patterns() -> dict[str, torch.Tensor]:
    bits = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16)
    return {"fp16": bits.view(torch.float16).float(), "bf16": bits.view(torch.bfloat16).float()}


def cast_sweep(device: str) -> list[str]:
    """reference.cast vs torch's native float8 casts on ``device``, every fp16/bf16 pattern (clamped).

    Expected value: the reference results are exactly the format's finite values (every one
    reached: fp16 and bf16 cover both FP8 ranges), derived from the bit layout alone."""
    fails = []
    for src, x in _all_patterns().items():
        finite = x[torch.isfinite(x)]
        for name, dt in (("fp8_e4m3fn", torch.float8_e4m3fn), ("fp8_e5m2", torch.float8_e5m2)):
            m = R.FORMATS[name].max
            native = finite.to(device).clamp(-m, m).to(dt).float().cpu()
            ours = R.cast(finite, name)
            bad = int(((native != ours) | (torch.signbit(native) != torch.signbit(ours))).sum())
            if bad:
                fails.append(f"{name} cast from {src} on {device}: {bad} of {finite.numel()} patterns differ")
            values = np.unique(ours.double().numpy()) + 0.0
            if not np.array_equal(np.unique(values), R.FORMATS[name].finite_values):
                fails.append(f"{name} cast from {src}: the results are not exactly the format's "
                             f"{R.FORMATS[name].finite_values.size} finite values")
    return fails


def _product_bound(a: torch.Tensor, b: torch.Tensor, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
    """|A'B'^T - AB^T| <= Ea |B'|^T + |A| Eb^T elementwise, for |A' - A| <= Ea, |B' - B| <= Eb
    (A'B' - AB = (A' - A)B' + A(B' - B)); float64, B' taken as |B| + Eb."""
    a, b, ea, eb = a.double(), b.double(), ea.double(), eb.double()
    return ea @ (b.abs() + eb).T + a.abs() @ eb.T


def fp8_matmul(device: str, ks: tuple[int, ...] = (128, 1024, 8192)) -> list[str]:
    """FP8 E4M3 tensor-wise scaled matmul (torch._scaled_mm) against the emulated product.

    For each K (and on CUDA for both ``use_fast_accum`` modes): error <= :func:`matmul_rtol`.
    Expected value: the emulated product is within the E4M3 rounding bound of the exact
    product of the unquantized operands (relative 2**-4 per element, 2**-10 * scale below
    the smallest normal)."""
    cc = R.current_capability() if device != "cpu" else None
    fails = []
    for k in ks:
        g = torch.Generator().manual_seed(k)
        a, b = torch.randn(128, k, generator=g), torch.randn(128, k, generator=g)
        qa, qb = R.quantize(a, "fp8_e4m3fn"), R.quantize(b, "fp8_e4m3fn")
        sa, sb = qa.scales.reshape(()), qb.scales.reshape(())
        want = R.dequantize(qa).double() @ R.dequantize(qb).double().T
        exact = a.double() @ b.double().T
        e4m3 = lambda x, s: x.abs() * 2.0**-4 + float(s) * 2.0**-10  # noqa: E731
        if not bool(((want - exact).abs() <= _product_bound(a, b, e4m3(a, sa), e4m3(b, sb)) * (1 + 1e-9)).all()):
            fails.append(f"FP8 emulated product (K={k}) is outside the E4M3 rounding bound of the exact product")
        a8 = qa.codes.view(torch.float8_e4m3fn).to(device)
        b8 = qb.codes.view(torch.float8_e4m3fn).to(device)
        for fast in ((False, True) if device != "cpu" else (False,)):
            try:
                got = torch._scaled_mm(a8, b8.t(), scale_a=sa.to(device), scale_b=sb.to(device),
                                       out_dtype=torch.float32, use_fast_accum=fast)
            except (RuntimeError, NotImplementedError) as exc:
                if device == "cpu":
                    return fails  # not every CPU build has the FP8 kernel; the CUDA lane is the one that must
                fails.append(f"torch._scaled_mm FP8 on {device} (use_fast_accum={fast}) failed: "
                             f"{str(exc).splitlines()[0]}")
                continue
            err = float((got.double().cpu() - want).abs().max() / want.abs().max())
            tol = matmul_rtol(k, cc, fast)
            where = device if cc is None else f"{device} {cc[0]}.{cc[1]}"
            _note(f"FP8 scaled matmul on {where}, K={k}, use_fast_accum={fast}: relative error {err:.2e} "
                  f"(bound {tol:.2e})")
            if not err <= tol:
                fails.append(f"FP8 scaled matmul on {where} (K={k}, use_fast_accum={fast}): "
                             f"relative error {err:.2e} > {tol:.2e}")
    return fails


def to_blocked(m: torch.Tensor) -> torch.Tensor:
    """cuBLAS block-scaling-factor layout: 128x4 tiles, each stored as 32x16 (NVIDIA cuBLAS docs)."""
    rows, cols = m.shape
    pr, pc = -(-rows // 128) * 128, -(-cols // 4) * 4
    padded = torch.zeros(pr, pc, dtype=m.dtype, device=m.device)
    padded[:rows, :cols] = m
    blocks = padded.view(pr // 128, 128, pc // 4, 4).permute(0, 2, 1, 3)
    return blocks.reshape(-1, 4, 32, 4).transpose(1, 2).reshape(-1, 32, 16).flatten()


def fp4_matmul(device: str) -> list[str]:
    """NVFP4 block-scaled matmul through torch._scaled_mm against the emulated product.

    Bound: :func:`matmul_rtol` (the accumulator of 10.x/12.x is assumed to be Hopper's until
    measured). Expected value: the emulated product is within the NVFP4 rounding bound of the
    exact product (E2M1: relative 2**-2, plus 2**-4 when the E4M3 block scale rounded down
    and 6 saturates, plus 0.25 block-scale units below 1)."""
    cc = R.current_capability() if device != "cpu" else None
    g = torch.Generator().manual_seed(1)
    k = 256
    a, b = torch.randn(128, k, generator=g), torch.randn(128, k, generator=g)
    qa, qb = R.quantize(a, "nvfp4"), R.quantize(b, "nvfp4")
    want = R.dequantize(qa).double() @ R.dequantize(qb).double().T
    exact = a.double() @ b.double().T

    def err_bound(x, q):
        unit = (q.scales * q.tensor_scale).repeat_interleave(16, dim=-1).reshape(x.shape)
        return x.abs() * (2.0**-2 + 2.0**-4) + unit * 0.25

    fails = []
    if not bool(((want - exact).abs() <= _product_bound(a, b, err_bound(a, qa), err_bound(b, qb)) * (1 + 1e-9)).all()):
        fails.append("NVFP4 emulated product is outside the NVFP4 rounding bound of the exact product")
    pa, pb = R.pack_fp4(qa.codes), R.pack_fp4(qb.codes)
    try:
        from torchao.prototype.mx_formats.kernels import pack_uint4

        if not (torch.equal(pack_uint4(qa.codes), pa) and torch.equal(pack_uint4(qb.codes), pb)):
            fails.append("packed FP4 codes differ from torchao's packing")
    except ImportError:
        pass
    sa = qa.scale_codes.reshape(a.shape[0], -1).view(torch.float8_e4m3fn)
    sb = qb.scale_codes.reshape(b.shape[0], -1).view(torch.float8_e4m3fn)
    try:
        got = torch._scaled_mm(
            pa.view(torch.float4_e2m1fn_x2).to(device), pb.view(torch.float4_e2m1fn_x2).to(device).t(),
            scale_a=to_blocked(sa).to(device), scale_b=to_blocked(sb).to(device), out_dtype=torch.float32,
        )
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        return fails + [f"NVFP4 torch._scaled_mm on {device} failed: {str(exc).splitlines()[0]}"]
    got = got.double().cpu() * float(qa.tensor_scale) * float(qb.tensor_scale)
    err = float((got - want).abs().max() / want.abs().max())
    tol = matmul_rtol(k, cc)
    where = device if cc is None else f"{device} {cc[0]}.{cc[1]}"
    _note(f"NVFP4 scaled matmul on {where}, K={k}: relative error {err:.2e} (bound {tol:.2e})")
    if not err <= tol:
        fails.append(f"NVFP4 scaled matmul on {where}: relative error {err:.2e} > {tol:.2e}")
    return fails


# ---- Reference quantizers: CUDA against CPU ------------------------------------------------

QUANTIZE_OPTIONS: dict[str, list[dict]] = {  # every option of reference.quantize, per format
    "fp32": [{}, {"per_tensor_scale": True}], "fp16": [{}, {"per_tensor_scale": True}],
    "bf16": [{}, {"per_tensor_scale": True}],
    "fp8_e4m3fn": [{}, {"per_tensor_scale": False}], "fp8_e5m2": [{}, {"per_tensor_scale": False}],
    "fp4_e2m1fn": [{}, {"per_tensor_scale": False}],
    "int8": [{}, {"symmetric": False}, {"group_size": 32}, {"symmetric": False, "group_size": 32}],
    "int4": [{}, {"symmetric": False}, {"group_size": 32}, {"symmetric": False, "group_size": 32}],
    "nvfp4": [{}, {"tensor_scale": False}], "mxfp4": [{}], "mxfp8": [{}],
}
# SNR of N(0, 1) data in dB, every option of the format above it (DESIGN §5: E4M3 31.5 dB,
# INT8 per tensor 39.7 dB, ...), less about 1.5 dB: a sanity floor for each device's results.
GAUSSIAN_SNR_FLOOR = {"fp32": 140.0, "fp16": 70.0, "bf16": 53.0, "fp8_e4m3fn": 30.0, "fp8_e5m2": 24.0,
                      "fp4_e2m1fn": 15.0, "int8": 38.0, "int4": 13.0, "nvfp4": 19.0, "mxfp4": 17.0, "mxfp8": 29.0}


def reference_data(shape: tuple[int, int] = (256, 512), seed: int = 0) -> dict[str, torch.Tensor]:
    """Gaussian, Student-t with 3 degrees of freedom, and data spread over 40 binades."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g)
    chi2 = sum(torch.randn(shape, generator=g) ** 2 for _ in range(3))
    return {
        "gaussian": z,
        "student-t(3)": torch.randn(shape, generator=g) / torch.sqrt(chi2 / 3),
        "40 binades": torch.randn(shape, generator=g) * torch.exp2(torch.empty(shape).uniform_(-20, 20, generator=g)),
    }


def _f32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def _quot(a, b) -> np.ndarray:
    """The correctly rounded float32 quotient (float64 holds it exactly enough to round once)."""
    return (np.asarray(a, dtype=np.float64) / np.float64(b)).astype(np.float32)


def expected_scales(x: torch.Tensor, name: str, opts: dict) -> tuple[np.ndarray, Optional[float]]:
    """(scales, NVFP4 tensor scale) of ``reference.quantize(x, name, **opts)``, from their
    definitions in float64 numpy, independently of reference.quantize."""
    fmt = R.FORMATS[name]
    v = x.numpy().astype(np.float32)
    if fmt.kind == "int":
        gs = opts.get("group_size")
        g = v.reshape(-1, gs) if gs else v.reshape(1, -1)
        if opts.get("symmetric", True):
            s = _quot(np.nanmax(np.abs(g), axis=1), fmt.qmax)
        else:
            lo = np.minimum(np.nanmin(g, axis=1), 0).astype(np.float32)
            hi = np.maximum(np.nanmax(g, axis=1), 0).astype(np.float32)
            s = _quot(hi - lo, fmt.qmax - fmt.qmin)
        return np.where(s > 0, s, np.float32(1)), None
    if fmt.kind == "float":
        if not opts.get("per_tensor_scale", fmt.bits <= 8):
            return _f32([1.0]), None
        s = _quot(np.nanmax(np.abs(v)), fmt.max)
        return _f32([s if s > 0 else 1.0]), None
    blocks = np.abs(v).reshape(-1, fmt.block_size).max(axis=1)
    if fmt.rule == "nvfp4":
        t = np.float32(1.0)
        if opts.get("tensor_scale", True):
            t = _quot(np.nanmax(np.abs(v)), 448.0 * 6.0)
            t = t if t > 0 else np.float32(1.0)
        q = np.clip(_quot(_quot(blocks, 6.0), t), 2.0**-6, 448.0).astype(np.float32)
        s = torch.from_numpy(q).to(torch.float8_e4m3fn).float().numpy()  # torch's own E4M3 cast
        return s, (float(t) if opts.get("tensor_scale", True) else None)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(blocks.astype(np.float64)))
    e = np.clip(np.nan_to_num(e, neginf=-200.0) - fmt.element.emax, -127, 127)
    return np.exp2(e).astype(np.float32), None


def _same(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> bool:
    """Bit-identical, NaN-aware (any NaN equals any NaN; -0.0 differs from 0.0)."""
    if a is None or b is None:
        return a is None and b is None
    a, b = a.cpu(), b.cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype == torch.float32:
        both_nan = torch.isnan(a) & torch.isnan(b)
        return bool(((a.view(torch.int32) == b.view(torch.int32)) | both_nan).all())
    return torch.equal(a, b)


FIELDS = ("codes", "scales", "scale_codes", "tensor_scale", "zero_point", "nan_mask")


def reference_cpu_vs_device(device: str = "cuda", data: Optional[dict] = None,
                            context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
                            ) -> list[str]:
    """reference.quantize / dequantize / fake_quantize on ``device`` against the same on CPU:
    every format of reference.FORMATS, every option, Gaussian, Student-t(3) and 40-binade
    data; 0 differences allowed in codes, scales and dequantized bits.

    Expected value, each side: every scale equals its definition computed in float64
    (:func:`expected_scales`), and on Gaussian data the SNR clears :data:`GAUSSIAN_SNR_FLOOR`.
    ``context`` wraps the device-side calls (tests use it to emulate CUDA on CPU)."""
    data = reference_data() if data is None else data
    fails: list[str] = []
    diffs = 0
    for name in R.FORMATS:
        for opts in QUANTIZE_OPTIONS[name]:
            label = f"{name}{'(' + ', '.join(f'{k}={v}' for k, v in opts.items()) + ')' if opts else ''}"
            for kind, x in data.items():
                cpu_q, cpu_fq = R.quantize(x, name, **opts), R.fake_quantize(x, name, **opts)
                cpu_deq = cpu_q.dequantize()
                xd = x.to(device)
                with context():
                    dev_q, dev_fq = R.quantize(xd, name, **opts), R.fake_quantize(xd, name, **opts)
                    dev_deq = dev_q.dequantize()
                bad = [f for f in FIELDS if not _same(getattr(cpu_q, f), getattr(dev_q, f))]
                bad += [w for w, c, d in (("dequantize", cpu_deq, dev_deq), ("fake_quantize", cpu_fq, dev_fq))
                        if not _same(c, d)]
                if bad:
                    diffs += 1
                    n = int((cpu_fq.view(torch.int32) != dev_fq.cpu().view(torch.int32)).sum())
                    fails.append(f"reference {label} on {kind} data: {device} differs from CPU in "
                                 f"{', '.join(bad)} ({n} of {x.numel()} fake-quantized values)")
                want_s, want_t = expected_scales(x, name, opts)
                for side, q in (("CPU", cpu_q), (device, dev_q)):
                    if not np.array_equal(q.scales.cpu().flatten().numpy(), want_s):
                        fails.append(f"reference {label} on {kind} data ({side}): scales differ from "
                                     "their float64 definition")
                    if want_t is not None and float(q.tensor_scale) != want_t:
                        fails.append(f"reference {label} on {kind} data ({side}): tensor scale "
                                     f"{float(q.tensor_scale)!r} != {want_t!r}")
                if kind == "gaussian":
                    for side, fq in (("CPU", cpu_fq), (device, dev_fq)):
                        snr = R.calculate_snr(x, fq.cpu())
                        if not snr >= GAUSSIAN_SNR_FLOOR[name]:
                            fails.append(f"reference {label} on Gaussian data ({side}): SNR {snr:.1f} dB "
                                         f"< {GAUSSIAN_SNR_FLOOR[name]} dB")
    _note(f"reference quantizers, {device} vs CPU: {diffs} differing (format, option, data) cases of "
          f"{sum(len(o) for o in QUANTIZE_OPTIONS.values()) * len(data)}")
    return fails


def cuda_scores_equal_cpu() -> list[str]:
    """Grade the model solution with CPU tensors and with CUDA tensors: full marks on both sides.

    (Equal scores alone prove nothing: a broken environment gives 0 on both.)"""
    from .. import config
    from ..grading.grade import grade_path
    from ..grading.labs import all_labs

    s = config.load(config.find_course_root())
    fails = []
    for lab in all_labs(s.course_root).values():
        for device in ("cpu", "cuda"):
            s.device = device
            r = grade_path(lab.model_solution(s.course_root), settings=s, lab=lab)
            if r.total != r.max_total:
                bad = [f"{c.name}: {c.message}" for e in r.exercises.values() for c in e.checks if not c.passed]
                fails.append(f"{lab.id}: model solution on {device.upper()} tensors: {r.total:g} / {r.max_total:g} "
                             f"({'; '.join(bad[:3])})")
    return fails


def canary() -> list[str]:
    """Every lab's model solution graded in this environment, as before a class: full marks or the reason."""
    from .. import config
    from ..grading.canary import CanaryFailed, run_canary
    from ..grading.labs import all_labs

    settings = config.load(config.find_course_root())
    fails = []
    for lab in all_labs(settings.course_root).values():
        try:
            run_canary(settings, lab)
        except CanaryFailed as exc:
            fails.append(str(exc))
    return fails


LANES: dict[str, list[tuple[str, Callable[[], list[str]]]]] = {
    "cpu": [("canary: every lab's model solution graded in this environment", canary),
            ("fp8 casts vs torch CPU (every fp16/bf16 pattern)", lambda: cast_sweep("cpu")),
            ("fp8 scaled matmul on CPU", lambda: fp8_matmul("cpu"))],
    "fp8-native": [("fp8 casts vs CUDA (every fp16/bf16 pattern)", lambda: cast_sweep("cuda")),
                   ("reference quantizers on CUDA vs CPU (every format and option)",
                    lambda: reference_cpu_vs_device("cuda")),
                   ("fp8 scaled matmul on CUDA (both use_fast_accum modes)", lambda: fp8_matmul("cuda")),
                   ("model solution scores on CUDA tensors", cuda_scores_equal_cpu)],
    "fp4-native": [("NVFP4 block-scaled matmul on CUDA", lambda: fp4_matmul("cuda"))],
}


def lane_checks(name: str) -> list[tuple[str, Callable[[], list[str]]]]:
    """The framework's checks of a lane, then those the course's labs add (``Lab.lanes``: (lane, label, fn))."""
    from .. import config
    from ..grading.labs import all_labs

    extra = [(f"{lab.id}: {label}", fn) for lab in all_labs(config.find_course_root()).values()
             for lane, label, fn in lab.lanes if lane == name]
    return list(LANES.get(name, [])) + extra


def run_lane(name: str) -> LaneResult:
    res = LaneResult(name, "passed")
    for label, fn in lane_checks(name):
        res.checks += 1
        NOTES.clear()
        try:
            fails = fn()
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of the lane, with its reason
            fails = [f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
            traceback.print_exc()
        res.failures += fails
        res.notes += NOTES
    NOTES.clear()
    if res.failures:
        res.status = "FAILED"
    return res


def device_check(simulate: Optional[tuple[int, int]] = None, out=print) -> int:
    has_cuda = torch.cuda.is_available() and simulate is None
    cc = simulate if simulate is not None else R.current_capability()
    desc = R.describe_device(cc, "simulated" if simulate else None) if simulate else R.describe_device()
    cap = desc["compute_capability"] or "none"
    native = R.torch_native_formats(cc)
    out(f"device: {desc['device']} ({desc['architecture']}), compute capability: {cap}")
    out(f"tensor-core formats of the hardware: {', '.join(desc['hardware']) or 'none'}")
    out(f"native formats (PyTorch {torch.__version__}): {', '.join(native) or 'none'}; "
        f"emulated: {', '.join(f for f in R.FORMATS if f not in native)}")
    missing = [f for f in desc["hardware"] if f in R.FORMATS and f not in native]
    if missing:
        out(f"in the hardware but not native in this PyTorch (emulated): {', '.join(missing)}")
    if has_cuda:
        out(f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}")
    ok = True
    for lane, (runs, reason) in plan(cc, has_cuda).items():
        if not runs:
            r = LaneResult(lane, "skipped", reason=reason)
        elif lane != "cpu" and not has_cuda:
            r = LaneResult(lane, "would run", reason=reason)
        else:
            r = run_lane(lane)
            ok &= r.status == "passed"
        out(r.line())
        for note in r.notes:
            out(f"  measured: {note}")
    return 0 if ok else 1
