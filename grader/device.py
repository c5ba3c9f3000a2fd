"""``python -m grader device-check``: native FP8/FP4 paths against the emulated references.

Lanes, chosen by ``reference.native_formats`` (DESIGN §3):

* ``cpu`` -- always: reference casts against torch's CPU float8 casts for every fp16 and
  bf16 bit pattern, FP8 scaled matmul on CPU against the emulated product, the notebook's
  environment table against the reference table.
* ``fp8-native`` -- compute capability >= 8.9 (Ada, Hopper, Blackwell): the same cast sweep
  with CUDA's native casts, ``torch._scaled_mm`` FP8 matmul against the emulated product,
  and the model solution graded with CUDA tensors must score as on CPU.
* ``fp4-native`` -- 10.x and 12.x (Blackwell, DGX Spark): NVFP4 block-scaled matmul through
  ``torch._scaled_mm`` (float4_e2m1fn_x2 with swizzled E4M3 block scales) against the
  emulated product, and the packed FP4 codes against torchao's packing.

Fairness: every graded check runs on CPU inputs; the hardware lanes only check that the
references and the hardware agree, so no point depends on the machine.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

import reference as R

# Documented tolerances for hardware matmuls against the float64 product of the dequantized
# operands: the inputs are exactly representable, so only fp32 accumulation order differs.
MATMUL_RTOL = 1e-4  # relative to max |product|


@dataclass
class LaneResult:
    name: str
    status: str  # "passed", "FAILED", "skipped", "would run"
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    reason: str = ""

    def line(self) -> str:
        if self.status == "passed":
            return f"lane {self.name}: ran {self.checks} checks, all passed"
        if self.status == "FAILED":
            return f"lane {self.name}: FAILED: " + "; ".join(self.failures)
        if self.status == "would run":
            return f"lane {self.name}: would run on this capability ({self.reason})"
        return f"lane {self.name}: skipped: {self.reason}"


def plan(capability: Optional[tuple[int, int]], has_cuda: bool) -> dict[str, tuple[bool, str]]:
    """Which lanes run for a capability: name -> (runs, reason)."""
    native = R.native_formats(capability)
    where = "no CUDA GPU on this machine" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
    out = {"cpu": (True, "always")}
    if "fp8_e4m3" in native:
        out["fp8-native"] = (True, f"FP8 tensor cores ({R.arch_name(capability)})")
    else:
        out["fp8-native"] = (False, f"needs compute capability >= 8.9 (Ada, Hopper, Blackwell); {where}")
    if "nvfp4" in native:
        out["fp4-native"] = (True, f"FP4 tensor cores ({R.arch_name(capability)})")
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
    """reference.cast vs torch's native float8 casts on ``device``, every fp16/bf16 pattern (clamped)."""
    fails = []
    for src, x in _all_patterns().items():
        finite = x[torch.isfinite(x)]
        for name, dt in (("fp8_e4m3", torch.float8_e4m3fn), ("fp8_e5m2", torch.float8_e5m2)):
            m = R.FORMATS[name].max
            native = finite.to(device).clamp(-m, m).to(dt).float().cpu()
            ours = R.cast(finite, name)
            bad = int(((native != ours) | (torch.signbit(native) != torch.signbit(ours))).sum())
            if bad:
                fails.append(f"{name} cast from {src} on {device}: {bad} of {finite.numel()} patterns differ")
    return fails


def fp8_matmul(device: str) -> list[str]:
    """FP8 E4M3 tensorwise-scaled matmul (torch._scaled_mm) against the emulated product."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 128, generator=g), torch.randn(32, 128, generator=g)
    qa, qb = R.quantize(a, "fp8_e4m3"), R.quantize(b, "fp8_e4m3")
    sa, sb = qa.scales.reshape(()), qb.scales.reshape(())
    want = (R.dequantize(qa).double() @ R.dequantize(qb).double().T)
    a8 = qa.codes.view(torch.float8_e4m3fn).to(device)
    b8 = qb.codes.view(torch.float8_e4m3fn).to(device)
    try:
        got = torch._scaled_mm(a8, b8.t(), scale_a=sa.to(device), scale_b=sb.to(device), out_dtype=torch.float32)
    except (RuntimeError, NotImplementedError) as exc:
        if device == "cpu":
            return []  # not every CPU build has the FP8 kernel; the CUDA lane is the one that must
        return [f"torch._scaled_mm FP8 on {device} failed: {str(exc).splitlines()[0]}"]
    err = float((got.double().cpu() - want).abs().max() / want.abs().max())
    return [] if err <= MATMUL_RTOL else [f"FP8 scaled matmul on {device}: relative error {err:.2e} > {MATMUL_RTOL}"]


def to_blocked(m: torch.Tensor) -> torch.Tensor:
    """cuBLAS block-scaling-factor layout: 128x4 tiles, each stored as 32x16 (NVIDIA cuBLAS docs)."""
    rows, cols = m.shape
    pr, pc = -(-rows // 128) * 128, -(-cols // 4) * 4
    padded = torch.zeros(pr, pc, dtype=m.dtype, device=m.device)
    padded[:rows, :cols] = m
    blocks = padded.view(pr // 128, 128, pc // 4, 4).permute(0, 2, 1, 3)
    return blocks.reshape(-1, 4, 32, 4).transpose(1, 2).reshape(-1, 32, 16).flatten()


def fp4_matmul(device: str) -> list[str]:
    """NVFP4 block-scaled matmul through torch._scaled_mm against the emulated product."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(128, 256, generator=g), torch.randn(128, 256, generator=g)
    qa, qb = R.quantize(a, "nvfp4"), R.quantize(b, "nvfp4")
    want = R.dequantize(qa).double() @ R.dequantize(qb).double().T
    fails = []
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
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        return fails + [f"NVFP4 torch._scaled_mm on {device} failed: {str(exc).splitlines()[0]}"]
    got = got.double().cpu() * float(qa.tensor_scale) * float(qb.tensor_scale)
    err = float((got - want).abs().max() / want.abs().max())
    if err > MATMUL_RTOL:
        fails.append(f"NVFP4 scaled matmul on {device}: relative error {err:.2e} > {MATMUL_RTOL}")
    return fails


def notebook_environment_table() -> list[str]:
    """The notebook's own native_formats table must equal reference.native_formats."""
    from .config import REPO_ROOT
    from .nbfile import read_cells

    cells = read_cells(REPO_ROOT / "source" / "lab321" / "lab321.ipynb")
    src = next(c for c in cells if "def native_formats" in c)
    ns: dict = {}
    exec(compile(src.split("if torch.cuda.is_available()")[0], "<notebook environment cell>", "exec"), ns)
    fails = []
    for cc in [(7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (10, 3), (12, 0), (12, 1)]:
        if ns["native_formats"](cc) != R.native_formats(cc):
            fails.append(f"the notebook's native_formats{cc} differs from reference.native_formats")
    return fails


def cuda_scores_equal_cpu() -> list[str]:
    """Grade the model solution with CPU tensors and with CUDA tensors: full marks on both sides.

    (Equal scores alone prove nothing: a broken environment gives 0 on both.)"""
    from . import config
    from .grade import grade_path

    nb = config.REPO_ROOT / "source" / "lab321" / "lab321.ipynb"
    s = config.load(config.REPO_ROOT)
    fails = []
    for device in ("cpu", "cuda"):
        s.device = device
        r = grade_path(nb, settings=s)
        if r.total != r.max_total:
            bad = [f"{c.name}: {c.message}" for e in r.exercises.values() for c in e.checks if not c.passed]
            fails.append(f"model solution on {device.upper()} tensors: {r.total:g} / {r.max_total:g} "
                         f"({'; '.join(bad[:3])})")
    return fails


def canary() -> list[str]:
    """The model solution graded in this environment, as before a class: full marks or the reason."""
    from . import config
    from .canary import CanaryFailed, run_canary

    try:
        run_canary(config.load(config.REPO_ROOT))
    except CanaryFailed as exc:
        return [str(exc)]
    return []


LANES: dict[str, list[tuple[str, Callable[[], list[str]]]]] = {
    "cpu": [("canary: the model solution graded in this environment", canary),
            ("fp8 casts vs torch CPU (every fp16/bf16 pattern)", lambda: cast_sweep("cpu")),
            ("fp8 scaled matmul on CPU", lambda: fp8_matmul("cpu")),
            ("notebook environment table", notebook_environment_table)],
    "fp8-native": [("fp8 casts vs CUDA (every fp16/bf16 pattern)", lambda: cast_sweep("cuda")),
                   ("fp8 scaled matmul on CUDA", lambda: fp8_matmul("cuda")),
                   ("model solution scores on CUDA tensors", cuda_scores_equal_cpu)],
    "fp4-native": [("NVFP4 block-scaled matmul on CUDA", lambda: fp4_matmul("cuda"))],
}


def run_lane(name: str) -> LaneResult:
    res = LaneResult(name, "passed")
    for label, fn in LANES[name]:
        res.checks += 1
        try:
            fails = fn()
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of the lane, with its reason
            fails = [f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
            traceback.print_exc()
        res.failures += fails
    if res.failures:
        res.status = "FAILED"
    return res


def device_check(simulate: Optional[tuple[int, int]] = None, out=print) -> int:
    has_cuda = torch.cuda.is_available() and simulate is None
    cc = simulate if simulate is not None else R.current_capability()
    desc = R.describe_device(cc, "simulated" if simulate else None) if simulate else R.describe_device()
    cap = desc["compute_capability"] or "none"
    out(f"device: {desc['device']} ({desc['architecture']}), compute capability: {cap}")
    out(f"native formats: {', '.join(desc['native']) or 'none'}; emulated: {', '.join(desc['emulated'])}")
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
    return 0 if ok else 1
