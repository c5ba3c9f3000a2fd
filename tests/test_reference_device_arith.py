"""Every scale is the correctly rounded float32 quotient, so CPU and CUDA agree bit for bit.

CUDA evaluates ``tensor / python_number`` as ``tensor * fl32(1 / number)`` (PyTorch's
BinaryDivTrueKernel.cu), the CPU divides. The sweeps below are built from amax values where
the two differ, so each test fails if a quantizer computed a scale by reciprocal
multiplication; the last tests replay every quantizer with CUDA's rule emulated on CPU.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import reference as R

DIVISORS = {  # the divisor of each scale computation -> where it is used
    448.0: "fp8_e4m3fn", 57344.0: "fp8_e5m2", 6.0: "fp4_e2m1fn and NVFP4 blocks", 127.0: "int8", 7.0: "int4",
    255.0: "int8 asymmetric", 15.0: "int4 asymmetric", 2688.0: "NVFP4 tensor scale", 65504.0: "fp16",
}


def recip_mul(x: np.ndarray, d: float) -> np.ndarray:
    """CUDA's x / d for a Python number d: x * fl32(1/d), rounded to float32."""
    return (x * np.float32(np.float32(1.0) / np.float32(d))).astype(np.float32)


def exact_div(x: np.ndarray, d: float) -> np.ndarray:
    """The correctly rounded float32 quotient, computed in float64 (exact enough to round once)."""
    return (x.astype(np.float64) / np.float64(d)).astype(np.float32)


def disagreeing(d: float, n: int, lo: float = -20, hi: float = 20, seed: int = 0) -> np.ndarray:
    """n positive float32 values x, spread over 2**lo .. 2**hi, with x * fl32(1/d) != x / d."""
    rng = np.random.default_rng(seed + int(d))
    x = (rng.uniform(1, 2, 20000) * np.exp2(rng.integers(lo, hi, 20000))).astype(np.float32)
    bad = x[recip_mul(x, d) != exact_div(x, d)]
    assert bad.size >= n, f"found only {bad.size} values where x * (1/{d}) != x / {d}"
    return bad[:n]


@pytest.mark.parametrize("d", sorted(DIVISORS))
def test_the_sweeps_hit_values_where_reciprocal_multiplication_differs(d):
    """The search is real: torch on CPU shows the same difference for these values."""
    x = torch.from_numpy(disagreeing(d, 32))
    assert bool((x * (1 / d) != torch.div(x, torch.tensor(d))).all())


def _with_amax(amax: np.ndarray, width: int, seed: int = 1) -> torch.Tensor:
    """Rows of ``width`` values in (-amax, amax) whose largest magnitude is amax (signs mixed)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.from_numpy(amax).reshape(-1, 1)
    x = (torch.rand(a.shape[0], width, generator=g) * 1.8 - 0.9) * a
    x[:, 3] = a[:, 0] * torch.where(torch.arange(a.shape[0]) % 2 == 0, 1.0, -1.0)
    return x


@pytest.mark.parametrize("name, d", [("int8", 127.0), ("int4", 7.0)])
def test_symmetric_int_group_scales_are_exact_quotients(name, d):
    amax = disagreeing(d, 64)
    q = R.quantize(_with_amax(amax, 32), name, group_size=32)
    assert np.array_equal(q.scales.flatten().numpy(), exact_div(amax, d))


@pytest.mark.parametrize("name, d", [("int8", 255.0), ("int4", 15.0)])
def test_asymmetric_int_scales_are_exact_quotients(name, d):
    hi = disagreeing(d, 64)
    x = _with_amax(hi, 32).abs()  # all >= 0, so lo = 0 and hi - lo = hi exactly
    x[:, 5] = 0.0
    q = R.quantize(x, name, symmetric=False, group_size=32)
    assert np.array_equal(q.scales.flatten().numpy(), exact_div(hi, d))


@pytest.mark.parametrize("name, d, opts", [
    ("fp8_e4m3fn", 448.0, {}), ("fp8_e5m2", 57344.0, {}), ("fp4_e2m1fn", 6.0, {}),
    ("fp16", 65504.0, {"per_tensor_scale": True}),
    ("int8", 127.0, {}), ("int4", 7.0, {}), ("int8", 255.0, {"symmetric": False}),
])
def test_per_tensor_scales_are_exact_quotients(name, d, opts):
    amax = disagreeing(d, 24, lo=-12, hi=12)
    for a, x in zip(amax, _with_amax(amax, 64)):
        if opts.get("symmetric") is False:
            x = x.abs()
            x[0] = 0.0
        got = R.quantize(x, name, **opts).scales.reshape(())
        assert got.item() == exact_div(np.array([a]), d)[0], (name, float(a))


def test_nvfp4_tensor_scale_is_the_exact_quotient():
    amax = disagreeing(2688.0, 24, lo=-10, hi=10)
    for a, x in zip(amax, _with_amax(amax, 64)):
        t = R.quantize(x, "nvfp4").tensor_scale
        assert t.item() == exact_div(np.array([a]), 2688.0)[0], float(a)


def _e4m3(v: np.ndarray) -> np.ndarray:
    """E4M3 block-scale rounding of float32 values (clamped as NVFP4 does), via ml_dtypes."""
    v = np.clip(v, 2.0**-6, 448.0)
    return v.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)


def _e4m3_boundary_amaxes(t: float) -> np.ndarray:
    """Block amaxes whose E4M3 block scale e4m3(fl32(fl32(amax / 6) / t)) changes when amax / 6
    is computed as amax * fl32(1/6): the quotient sits exactly on an E4M3 rounding boundary."""
    mids = []
    grid = np.unique(np.abs(R.FORMATS["fp8_e4m3fn"].finite_values))
    grid = grid[(grid >= 2.0**-6) & (grid <= 448)]
    mids = ((grid[1:] + grid[:-1]) / 2).astype(np.float32)  # E4M3 ties
    centre = (mids.astype(np.float64) * 6 * t).astype(np.float32)
    cands = (centre.view(np.int32)[:, None] + np.arange(-8, 9)[None, :]).astype(np.int32).view(np.float32).ravel()
    exact = _e4m3(exact_div(exact_div(cands, 6.0), t))
    recip = _e4m3(exact_div(recip_mul(cands, 6.0), t))
    return cands[exact != recip]


@pytest.mark.parametrize("tensor_scale", [False, True])
def test_nvfp4_block_scales_round_the_exact_quotient(tensor_scale):
    big = np.float32(2688.0 * 3.0)  # tensor amax 8064 -> t = 3 exactly
    t = float(exact_div(np.array([big]), 2688.0)[0]) if tensor_scale else 1.0
    bam = _e4m3_boundary_amaxes(t)
    bam = bam[bam < big]
    assert bam.size >= 8, "no E4M3 boundary cases found"
    x = _with_amax(bam, 16)
    x[0, 0] = float(big)  # the tensor amax (the first block's amax becomes big, dropped below)
    q = R.quantize(x, "nvfp4", tensor_scale=tensor_scale)
    want = _e4m3(exact_div(exact_div(bam, 6.0), t))
    got = q.scales.flatten().numpy()
    assert np.array_equal(got[1:], want[1:])
    assert (q.tensor_scale is not None) == tensor_scale


@pytest.mark.parametrize("name, emax", [("mxfp4", 2), ("mxfp8", 8)])
def test_mx_scales_are_exact_powers_of_two_down_to_2_pow_minus_127(name, emax):
    # amaxes from normal floats down to subnormals: scale = 2**clamp(floor(log2 amax) - emax, -127, 127)
    amax = np.array([2.0**e * 1.5 for e in range(-149, 128, 7)], dtype=np.float32)
    x = _with_amax(amax, 32)
    q = R.quantize(x, name)
    floor_log2 = np.floor(np.log2(amax.astype(np.float64)))
    want = np.exp2(np.clip(floor_log2 - emax, -127, 127)).astype(np.float32)
    got = q.scales.flatten().numpy()
    assert np.array_equal(got, want)
    assert got.min() == np.float32(2.0**-127) and np.array_equal(q.scale_codes.flatten().numpy(), np.log2(want) + 127)


# ---- CUDA's scalar-division rule, emulated on CPU -------------------------------------------

_DIVS = {torch.div, torch.true_divide, torch.Tensor.div, torch.Tensor.div_, torch.Tensor.__truediv__,
         torch.Tensor.__itruediv__, torch.Tensor.true_divide}
_RDIVS = {torch.Tensor.__rtruediv__, torch.Tensor.__rdiv__}


class CudaScalarDivision(TorchFunctionMode):
    """``tensor / number`` becomes ``tensor * fl32(1/number)`` as on CUDA; every such call is recorded."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _DIVS and len(args) == 2 and isinstance(args[1], (int, float, np.number)) \
                and not kwargs.get("rounding_mode"):
            self.calls.append(f"{getattr(func, '__name__', func)}(tensor, {args[1]!r})")
            inv = float(np.float32(1.0) / np.float32(args[1]))
            if func in (torch.Tensor.div_, torch.Tensor.__itruediv__):
                return args[0].mul_(inv)
            return torch.mul(args[0], inv)
        if func in _RDIVS:
            self.calls.append(f"{getattr(func, '__name__', func)}(number / tensor)")
        return func(*args, **kwargs)


def test_the_emulation_changes_a_division_by_a_python_float():
    x = torch.from_numpy(disagreeing(448.0, 16))
    with CudaScalarDivision() as mode:
        emulated = x / 448.0
    assert mode.calls and not torch.equal(emulated, torch.div(x, torch.tensor(448.0)))


OPTIONS = {
    "int8": [{}, {"symmetric": False}, {"group_size": 32}, {"symmetric": False, "group_size": 32}],
    "int4": [{}, {"symmetric": False}, {"group_size": 32}, {"symmetric": False, "group_size": 32}],
    "fp8_e4m3fn": [{}, {"per_tensor_scale": False}], "fp8_e5m2": [{}, {"per_tensor_scale": False}],
    "fp4_e2m1fn": [{}, {"per_tensor_scale": False}], "fp16": [{}, {"per_tensor_scale": True}],
    "bf16": [{}, {"per_tensor_scale": True}], "fp32": [{}, {"per_tensor_scale": True}],
    "nvfp4": [{}, {"tensor_scale": False}], "mxfp4": [{}], "mxfp8": [{}],
}


def test_options_table_covers_every_format():
    assert set(OPTIONS) == set(R.FORMATS)


def _sweep_data() -> torch.Tensor:
    """Per-row amaxes from every divisor's disagreeing set, plus 40-binade noise."""
    rows = np.concatenate([disagreeing(d, 8) for d in sorted(DIVISORS)])
    x = _with_amax(rows, 64)
    g = torch.Generator().manual_seed(7)
    spread = torch.exp2(torch.empty(8, 64).uniform_(-20, 20, generator=g))
    return torch.cat([x, torch.randn(8, 64, generator=g) * spread])


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


@pytest.mark.parametrize("name", sorted(R.FORMATS))
def test_quantizers_are_unchanged_under_cuda_scalar_division(name):
    """Proof that no quantizer divides a tensor by a Python number: CUDA's rule changes nothing."""
    data = _sweep_data()
    for opts in OPTIONS[name]:
        x = data
        ref_q, ref_fq = R.quantize(x, name, **opts), R.fake_quantize(x, name, **opts)
        with CudaScalarDivision() as mode:
            q, fq = R.quantize(x, name, **opts), R.fake_quantize(x, name, **opts)
            deq = q.dequantize()
        assert mode.calls == [], f"{name} {opts}: divides by a Python number: {mode.calls[:3]}"
        assert torch.equal(_bits(fq), _bits(ref_fq)), (name, opts)
        assert torch.equal(_bits(deq), _bits(ref_q.dequantize())), (name, opts)
        assert torch.equal(q.codes, ref_q.codes) and torch.equal(_bits(q.scales), _bits(ref_q.scales)), (name, opts)
