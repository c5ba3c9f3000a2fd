"""Casts and quantizers for every format in :data:`reference.FORMATS`.

All functions are pure tensor -> tensor functions working in float32 on any device.

Behaviour on special inputs (the same for every format):

* ``cast`` is a saturating cast (CUDA's "satfinite"): finite values beyond ``max`` and
  +-inf become +-max; NaN stays NaN; -0.0 stays -0.0.
* ``fake_quantize`` / ``quantize`` refuse +-inf (a scale computed from an infinite amax is
  meaningless); clamp or ``torch.nan_to_num`` the data first.
* NaN elements are ignored when an amax is computed. In the per-tensor and per-group
  formats a NaN element dequantizes to NaN and nothing else changes. In the block formats
  a NaN makes its block's scale NaN (OCP MX v1.0 §6.3: scale code 0xFF for MX, 0x7F for
  NVFP4's E4M3 scale), so the whole block dequantizes to NaN.
* An all-zero tensor, group or block quantizes to zeros (scale 1 where a division by
  amax would be 0/0).

Results are bit-identical on every device (CPU, CUDA): each scale is the correctly rounded
float32 quotient of float32 operands (see "Device-independent arithmetic" below), every
other step is an IEEE operation (add, multiply, round, compare) or bit manipulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from .formats import BlockFormat, FloatFormat, IntFormat, FP4_E2M1, FP8_E4M3, get_format

F32_MANT = 23
F32_BIAS = 127


# ----------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------

def _as_float32(x: Any, what: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except Exception as exc:  # noqa: BLE001 - re-raised with a clearer message
            raise TypeError(f"{what} must be a torch.Tensor or array-like of floats, got {type(x).__name__}") from exc
    if not (x.is_floating_point()):
        raise TypeError(
            f"{what} has dtype {x.dtype}; quantizers take floating-point data. "
            f"Convert first, e.g. {what}.float()."
        )
    if x.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)}); pass at least one element.")
    return x.to(torch.float32)


def _refuse_inf(x: torch.Tensor, what: str = "x") -> None:
    inf = torch.isinf(x)
    if bool(inf.any()):
        first = tuple(int(i) for i in torch.nonzero(inf)[0])
        raise ValueError(
            f"{what} contains {int(inf.sum())} infinite value(s) (first at index {first}); "
            "a scale computed from an infinite amax is meaningless. "
            "Clamp the data or use torch.nan_to_num before quantizing."
        )


def _check_last_dim(x: torch.Tensor, block: int, what: str) -> None:
    if x.dim() == 0 or x.shape[-1] % block != 0:
        last = x.shape[-1] if x.dim() else "none (0-d tensor)"
        raise ValueError(
            f"{what} of {block} must divide the last dimension, but x has shape {tuple(x.shape)} "
            f"(last dimension {last}). Pad or reshape x so its last dimension is a multiple of {block}."
        )


# ----------------------------------------------------------------------------------------
# Device-independent arithmetic
# ----------------------------------------------------------------------------------------
# Every scale here is fl32(a / b): the IEEE float32 quotient of two float32 values, correctly
# rounded (= float32(float64(a) / float64(b)), since float64 holds the exact quotient to
# more than 2 * 24 + 2 bits). Both operands are always tensors on the data's device.
#
# Never `tensor / 448.0`: on CUDA, dividing by a CPU scalar (a Python number, or a 0-d CPU
# tensor) is computed as tensor * fl32(1 / 448) (PyTorch, aten/src/ATen/native/cuda/
# BinaryDivTrueKernel.cu: "if the second operand is a CPU scalar, compute a * reciprocal(b)"),
# which differs from the quotient in about half of all float32 inputs for 448, 57344, 6, 7;
# the CPU kernel divides. Measured on an H200: v / 448 differed from CPU in 573055 of 1M
# values. Dividing by a tensor on the same device divides on both devices.
# tests/test_reference_device_arith.py pins every scale against the float64 quotient and
# replays each quantizer with CUDA's scalar-division rule emulated.


def _const(value: float, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d float32 tensor on ``like``'s device (a fill kernel, no host copy)."""
    return torch.full((), value, dtype=torch.float32, device=like.device)


def _div(a: torch.Tensor, b: float) -> torch.Tensor:
    """fl32(a / b) for a Python number ``b``, the same on CPU and CUDA (see above)."""
    return torch.div(a, _const(b, a))


def _nan_amax(x: torch.Tensor, dim=None, keepdim: bool = False) -> torch.Tensor:
    """amax of |x| ignoring NaN (NaN counts as 0)."""
    a = x.abs().nan_to_num_(nan=0.0)
    return a.amax() if dim is None else a.amax(dim=dim, keepdim=keepdim)


# ----------------------------------------------------------------------------------------
# Element casts
# ----------------------------------------------------------------------------------------

def _round_float(x: torch.Tensor, fmt: FloatFormat, inplace: bool = False) -> torch.Tensor:
    """Round float32 ``x`` to ``fmt``: nearest, ties to even, saturating at +-max.

    The rounding is done by float32 addition: adding ``C = 2**(e + 23 - M)`` to ``|x|``
    (``e`` its binade, clamped to the format's smallest normal binade) leaves an ulp of
    ``2**(e - M)``, exactly one step of the target format, and IEEE addition rounds to
    nearest even. Subtracting ``C`` again is exact. With ``inplace=True`` ``x`` (a
    temporary of the caller's) is overwritten, which keeps the peak memory near 2x.
    """
    if fmt.mantissa_bits >= F32_MANT:
        return x if inplace else x.clone()
    if fmt.emax - fmt.mantissa_bits + F32_MANT > F32_BIAS:
        # C would overflow float32 (bf16: same exponent range as fp32). Round the float32
        # bit pattern instead: with an identical exponent range, rounding the mantissa to
        # nearest even is the whole cast, subnormals included.
        drop = F32_MANT - fmt.mantissa_bits
        a = x.clamp_(-fmt.max, fmt.max) if inplace else x.clamp(-fmt.max, fmt.max)
        nan = torch.isnan(a)
        bits = a.view(torch.int32)
        lsb = (bits >> drop).bitwise_and_(1)
        bits.add_(lsb)
        del lsb
        bits.add_((1 << (drop - 1)) - 1).bitwise_and_(~((1 << drop) - 1))
        return a.masked_fill_(nan, float("nan")) if bool(nan.any()) else a
    sign = torch.signbit(x)
    a = x.abs_() if inplace else x.abs()
    a.clamp_(max=fmt.max)  # NaN stays NaN; inf saturates
    e = a.view(torch.int32) >> F32_MANT  # biased float32 exponent (sign bit is 0)
    e.clamp_(min=fmt.emin + F32_BIAS, max=fmt.emax + F32_BIAS)
    e.add_(F32_MANT - fmt.mantissa_bits).bitwise_left_shift_(F32_MANT)
    c = e.view(torch.float32)
    a.add_(c).sub_(c)
    del e, c
    bits = a.view(torch.int32)
    return bits.bitwise_or_(sign.to(torch.int32).bitwise_left_shift_(31)).view(torch.float32)


def cast(x: Any, name: str) -> torch.Tensor:
    """Round ``x`` to the float format ``name`` and return the values as float32.

    Round to nearest, ties to even; saturate at +-max (inf included); NaN stays NaN.
    ``name`` is one of fp32, fp16, bf16, fp8_e4m3fn, fp8_e5m2, fp4_e2m1fn (or an alias, e.g. fp8_e4m3).
    """
    fmt = get_format(name)
    if not isinstance(fmt, FloatFormat):
        raise ValueError(
            f"cast() rounds to an element float format; {fmt.name!r} is a {fmt.kind} format. "
            f"Use fake_quantize(x, {fmt.name!r}) for scaled formats."
        )
    x = _as_float32(x)
    return _round_float(x, fmt)


def encode(values: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Return the bit pattern (uint8 or int16 view) of values that already lie on ``fmt``'s grid."""
    if fmt.bits == 16:
        return values.to(_NATIVE16[fmt.name]).view(torch.int16)
    if fmt.bits > 8:
        raise ValueError(f"encode() handles formats of <= 16 bits, not {fmt.name}")
    table = _positive_table(fmt, values.device)
    mag = torch.searchsorted(table, values.abs().contiguous())
    codes = mag.to(torch.uint8)
    if fmt.signed:
        codes |= (torch.signbit(values).to(torch.uint8) << (fmt.bits - 1))
    nan = torch.isnan(values)
    if bool(nan.any()):
        if not fmt.has_nan:
            raise ValueError(f"{fmt.name} has no NaN encoding; the data holds NaN at {int(nan.sum())} place(s)")
        codes[nan] = _nan_code(fmt)
    return codes


def _nan_code(fmt: FloatFormat) -> int:
    """The largest non-negative code that decodes to NaN (E4M3: 0x7F, E5M2: 0x7F, E8M0: 0xFF)."""
    half = fmt.code_values[: 1 << (fmt.bits - int(fmt.signed))]
    return int(np.flatnonzero(np.isnan(half))[-1])


_NATIVE16 = {"fp16": torch.float16, "bf16": torch.bfloat16}  # exact: values are already on the grid
_TABLES: dict[tuple[str, str], torch.Tensor] = {}


def _positive_table(fmt: FloatFormat, device) -> torch.Tensor:
    """Values of codes 0, 1, 2, ... (non-negative, finite, increasing) for a <= 8-bit format."""
    key = (fmt.name, str(device))
    if key not in _TABLES:
        vals = fmt.code_values[: 1 << (fmt.bits - int(fmt.signed))]
        vals = vals[np.isfinite(vals)]
        assert np.all(np.diff(vals) > 0), f"{fmt.name}: non-negative codes are not ordered by value"
        _TABLES[key] = torch.tensor(vals, dtype=torch.float32, device=device)
    return _TABLES[key]


def decode(codes: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Return float32 values of ``codes`` (bit patterns as produced by :func:`encode`)."""
    if fmt.bits == 16:
        return codes.view(_NATIVE16[fmt.name]).to(torch.float32)
    lut = torch.tensor(fmt.code_values, dtype=torch.float32, device=codes.device)
    return lut[codes.to(torch.int64)]


# ----------------------------------------------------------------------------------------
# Quantized representation
# ----------------------------------------------------------------------------------------

@dataclass
class Quantized:
    """Codes and scales of a quantized tensor; ``dequantize()`` turns it back into float32.

    codes        element codes: bit patterns (uint8/int16) for float elements, integers
                 (int8 tensor) for integer formats. Same shape as the input.
    scales       float32 scales, one per scaling group (tensor, group or block), shaped so
                 they broadcast against ``codes`` reshaped to ``(..., groups, group_size)``;
                 for NVFP4 these are the decoded E4M3 block scales (without the tensor scale).
    scale_codes  bit patterns of the block scales (uint8, E4M3 or E8M0), or None.
    tensor_scale NVFP4's FP32 per-tensor scale (decode direction), or None.
    zero_point   asymmetric integer zero points (int tensor), or None.
    """

    format: str
    codes: torch.Tensor
    scales: torch.Tensor
    group_size: Optional[int] = None
    scale_codes: Optional[torch.Tensor] = None
    tensor_scale: Optional[torch.Tensor] = None
    zero_point: Optional[torch.Tensor] = None
    nan_mask: Optional[torch.Tensor] = field(default=None, repr=False)

    def dequantize(self) -> torch.Tensor:
        return dequantize(self)


def _grouped(x: torch.Tensor, group: Optional[int]) -> torch.Tensor:
    if group is None:
        return x.reshape(1, -1)
    return x.reshape(*x.shape[:-1], x.shape[-1] // group, group)


# ---- integer ---------------------------------------------------------------------------

def _quantize_int(x: torch.Tensor, fmt: IntFormat, symmetric: bool = True, group_size: Optional[int] = None,
                  values_only: bool = False):
    if group_size is not None:
        _check_group(group_size)
        _check_last_dim(x, group_size, "group_size")
    g = _grouped(x, group_size)
    if symmetric:
        # The lab's scheme: scale = amax / qmax, so only +-qmax is reached (DESIGN §2).
        amax = _nan_amax(g, dim=-1, keepdim=True)
        scale = _div(amax, fmt.qmax)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.div(g, scale).round_().clamp_(fmt.qmin, fmt.qmax)
        zp = None
    else:
        clean = torch.nan_to_num(g, nan=0.0)
        lo = clean.amin(dim=-1, keepdim=True).clamp(max=0.0)
        hi = clean.amax(dim=-1, keepdim=True).clamp(min=0.0)
        scale = _div(hi - lo, fmt.qmax - fmt.qmin)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        del clean
        zp = (fmt.qmin - torch.round(lo / scale)).clamp_(fmt.qmin, fmt.qmax)
        q = torch.div(g, scale).round_().add_(zp).clamp_(fmt.qmin, fmt.qmax)
    if values_only:  # fake_quantize: NaN propagates through round/clamp by itself
        return ((q if zp is None else q.sub_(zp)).mul_(scale)).reshape(x.shape)
    nan = torch.isnan(g)
    q = torch.nan_to_num(q, nan=0.0)
    return Quantized(
        fmt.name, q.to(torch.int8).reshape(x.shape), scale, group_size,
        zero_point=None if zp is None else zp.to(torch.int32),
        nan_mask=nan.reshape(x.shape) if bool(nan.any()) else None,
    )


def _check_group(group_size: Any) -> None:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer such as 32 or 128, got {group_size!r}")


# ---- per-tensor float ------------------------------------------------------------------

def _quantize_float(x: torch.Tensor, fmt: FloatFormat, per_tensor_scale: Optional[bool] = None,
                    values_only: bool = False):
    if per_tensor_scale is None:
        per_tensor_scale = fmt.bits <= 8  # fp16/bf16/fp32 are plain casts; fp8/fp4 are scaled
    if per_tensor_scale:
        amax = _nan_amax(x)
        scale = _div(amax, fmt.max).reshape(1, 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        # amax / scale may land just above max (the scale is rounded): saturate, as the cast
        # does (fp32, whose cast rounds nothing, would otherwise overflow to inf).
        q = _round_float(torch.div(x, scale.reshape(())).clamp_(-fmt.max, fmt.max), fmt, inplace=True)
    else:
        scale = torch.ones(1, 1, device=x.device)
        q = _round_float(x, fmt)
    if values_only:
        return q.mul_(scale.reshape(())) if per_tensor_scale else q
    codes = encode(q, fmt) if fmt.bits <= 16 else q
    return Quantized(fmt.name, codes, scale, None)


# ---- block formats ---------------------------------------------------------------------

def _quantize_nvfp4(x: torch.Tensor, fmt: BlockFormat, tensor_scale: bool = True, values_only: bool = False):
    """NVFP4 (DESIGN §2) with torchao's arithmetic order, so results match it bit for bit.

    tensor scale (decode)  t = amax(x) / (448 * 6)
    block scale            s = e4m3(clamp(amax(block) / 6 / t, 2**-6, 448))
    element                q = e2m1(clamp(x * ((1 / t) / s), -6, 6))
    value                  q * (t * s)

    Every quotient is fl32 (correctly rounded float32), identical on CPU and CUDA. torchao
    on CPU computes the same; torchao on CUDA does not: its ``max_abs / F4_E2M1_MAX`` (and
    ``per_tensor_amax_to_scale``'s ``amax / (448 * 6)``) divide by Python floats, which CUDA
    evaluates as multiplication by fl32(1/6) (fl32(1/2688)), so on CUDA its block scales
    sit an ulp off ours for about a third of blocks before E4M3 rounding (and the tensor
    scale for about a fifth of tensors), which changes an E4M3 block scale or an E2M1 code
    where the quotient lies at a rounding boundary. Its Triton/MSLK kernels were not compared.

    Corner cases follow torchao: block scales are clamped to >= 2**-6, the smallest E4M3
    normal. TransformerEngine and ModelOpt allow subnormal E4M3 scales instead, and ModelOpt
    turns a zero block scale into 1; on Gaussian data all three agree, on heavy-tailed data a
    few percent of block scales differ. With ``tensor_scale=False`` the single-level variant
    (t = 1) is used.
    """
    bs = fmt.block_size
    _check_last_dim(x, bs, "NVFP4's block size")
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // bs, bs)
    block_amax = blocks.abs().amax(dim=-1, keepdim=True)  # NaN propagates: a NaN block gets a NaN scale
    if tensor_scale:
        amax = torch.nan_to_num(block_amax, nan=0.0).amax()  # = nan-ignoring amax(|x|), one pass saved
        t = _div(amax, FP8_E4M3.max * FP4_E2M1.max)  # 2688, exact in float32
        t = torch.where(t > 0, t, torch.ones_like(t))
    else:
        t = torch.ones((), device=x.device)
    s = _round_float(torch.div(_div(block_amax, FP4_E2M1.max), t).clamp_(min=FP8_E4M3.min_normal, max=FP8_E4M3.max),
                     FP8_E4M3)
    recip = torch.div(torch.div(_const(1.0, t), t), s)  # fl32(fl32(1 / t) / s), as torchao
    q = _round_float((blocks * recip).clamp_(-FP4_E2M1.max, FP4_E2M1.max), FP4_E2M1, inplace=True)
    if values_only:  # a NaN scale makes its block NaN by itself
        return q.mul_(t * s).reshape(x.shape)
    nan_block = torch.isnan(s)
    q = torch.where(nan_block, torch.zeros((), device=x.device), q)
    return Quantized(
        fmt.name, encode(q, FP4_E2M1).reshape(x.shape), s, bs,
        scale_codes=encode(s, FP8_E4M3), tensor_scale=t if tensor_scale else None,
    )


def _quantize_mx(x: torch.Tensor, fmt: BlockFormat, values_only: bool = False):
    """OCP MX v1.0 §6.3 with the FLOOR rule: scale = 2**(floor(log2 amax) - emax_elem).

    The scale exponent is clamped to [-127, 127] (the E8M0 range); a NaN in a block gives
    the NaN scale 0xFF. torchao's FLOOR mode agrees bit for bit except for blocks whose
    amax is below about 2**-125, where torchao divides by 2**-126 instead of the stored 2**-127.
    On CUDA too: its data / scale divides by a power-of-two tensor, exact on every device.
    """
    bs, elem = fmt.block_size, fmt.element
    _check_last_dim(x, bs, f"{fmt.name}'s block size")
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // bs, bs)
    block_amax = blocks.abs().amax(dim=-1, keepdim=True)
    nan_block = torch.isnan(block_amax)
    # floor(log2(amax)) is the float32 exponent field (0 for zero/subnormal amax: clamps anyway)
    floor_log2 = (torch.nan_to_num(block_amax, nan=0.0).view(torch.int32) >> F32_MANT) - F32_BIAS
    exp = (floor_log2 - elem.emax).clamp_(-127, 127)
    scale_codes = (exp + 127).to(torch.uint8)
    scale_codes[nan_block] = 0xFF
    # 2**exp built from its bits (exact on every device; pow/ldexp need not be): the biased
    # exponent field for exp >= -126, the subnormal 2**-127 (mantissa bit 22) below.
    bits = torch.where(exp > -F32_BIAS, (exp + F32_BIAS) << F32_MANT, torch.full_like(exp, 1 << (F32_MANT - 1)))
    scale = bits.to(torch.int32).view(torch.float32)
    scale = torch.where(nan_block, torch.full_like(scale, float("nan")), scale)
    q = _round_float((blocks / scale).clamp_(-elem.max, elem.max), elem, inplace=True)
    if values_only:
        return q.mul_(scale).reshape(x.shape)
    q = torch.where(nan_block, torch.zeros((), device=x.device), q)
    return Quantized(fmt.name, encode(q, elem).reshape(x.shape), scale, bs, scale_codes=scale_codes)


# ----------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------

_OPTIONS = {
    "int": {"symmetric", "group_size"},
    "float": {"per_tensor_scale"},
    "nvfp4": {"tensor_scale"},
    "mx_floor": set(),
}


def quantize(x: Any, name: str, **options: Any) -> Quantized:
    """Quantize ``x`` to format ``name``; return codes and scales (see :class:`Quantized`).

    Options by kind of format:
      int8/int4         symmetric=True (False: asymmetric with zero point), group_size=None
                        (N: one scale per N elements of the last dimension)
      fp8/fp4 elements  per_tensor_scale=True (scale = amax / max); False: plain cast
      fp16/bf16/fp32    per_tensor_scale=False by default
      nvfp4             tensor_scale=True (two-level scaling); False: E4M3 block scales only
      mxfp4/mxfp8       no options
    """
    return _dispatch(x, name, options, values_only=False)


def _dispatch(x: Any, name: str, options: dict, values_only: bool):
    fmt = get_format(name)
    key = fmt.rule if isinstance(fmt, BlockFormat) else fmt.kind
    unknown = set(options) - _OPTIONS[key]
    if unknown:
        valid = ", ".join(sorted(_OPTIONS[key])) or "none"
        raise TypeError(f"{fmt.name} does not take option(s) {', '.join(sorted(unknown))}; valid options: {valid}")
    x = _as_float32(x)
    _refuse_inf(x)
    if isinstance(fmt, IntFormat):
        return _quantize_int(x, fmt, values_only=values_only, **options)
    if isinstance(fmt, FloatFormat):
        return _quantize_float(x, fmt, values_only=values_only, **options)
    if fmt.rule == "nvfp4":
        return _quantize_nvfp4(x, fmt, values_only=values_only, **options)
    return _quantize_mx(x, fmt, values_only=values_only)


def dequantize(q: Quantized) -> torch.Tensor:
    """Turn a :class:`Quantized` back into float32 values of the original shape."""
    fmt = get_format(q.format)
    shape = q.codes.shape
    if isinstance(fmt, IntFormat):
        g = _grouped(q.codes.to(torch.float32), q.group_size)
        if q.zero_point is not None:
            g = g - q.zero_point.to(torch.float32)
        out = (g * q.scales).reshape(shape)
        if q.nan_mask is not None:
            out = out.masked_fill(q.nan_mask, float("nan"))
        return out
    if isinstance(fmt, FloatFormat):
        vals = decode(q.codes, fmt) if fmt.bits <= 16 else q.codes
        return vals * q.scales.reshape(())
    vals = decode(q.codes, fmt.element)
    blocks = vals.reshape(*shape[:-1], shape[-1] // fmt.block_size, fmt.block_size)
    scale = q.scales if q.tensor_scale is None else q.tensor_scale * q.scales
    return (blocks * scale).reshape(shape)


def fake_quantize(x: Any, name: str, **options: Any) -> torch.Tensor:
    """Quantize then dequantize: float32 values of ``x`` as format ``name`` stores them.

    Same options as :func:`quantize`. Same shape as ``x``; float32.
    """
    return _dispatch(x, name, options, values_only=True)


def pack_fp4(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes two per byte as torch.float4_e2m1fn_x2 stores them: element 2i in the low nibble."""
    if codes.shape[-1] % 2:
        raise ValueError(f"pack_fp4 needs an even last dimension, got shape {tuple(codes.shape)}")
    c = codes.to(torch.uint8)
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_fp4`."""
    p = packed.view(torch.uint8)
    return torch.stack((p & 0x0F, p >> 4), dim=-1).reshape(*p.shape[:-1], p.shape[-1] * 2)
