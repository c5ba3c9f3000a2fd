"""Exercise ``quantizer``: the student's FP8 E4M3 encoder and NVFP4 block quantizer, bit-exact.

``e4m3_encode(x)`` returns the E4M3FN bit patterns (uint8) of float32 ``x``: round to nearest,
ties to even, saturating (beyond 448 and +-inf give +-448), NaN gives a NaN code (0x7F or
0xFF), -0 keeps its sign. ``nvfp4_encode(x)`` returns ``{"codes", "scale_codes",
"tensor_scale"}``: E2M1 element codes (0..15, sign bit 0x8), the E4M3 block-scale codes (one
per 16 elements) and the FP32 per-tensor scale, exactly as ``reference.quantize(x, "nvfp4")``.
Element codes inside a NaN block are not compared (the block decodes to NaN whatever they are).

Public checks show the first differing element and its input; a failed hidden check shows only
its fixed text (:attr:`grader.grading.checks.Check.hidden_failure`), never a count or a position.
"""

from __future__ import annotations

import numpy as np
import torch

import reference
from reference.formats import FP8_E4M3
from reference.quantize import decode, encode

from . import Fail, as_dict, as_number, check, exercise, lower_keys, HIDDEN

exercise("quantizer", "Exercise 1: write the quantizer (FP8 E4M3 and NVFP4, bit-exact)", order=1)
NAN_CODES = (0x7F, 0xFF)


def want_e4m3(x: np.ndarray) -> np.ndarray:
    return encode(reference.cast(torch.from_numpy(x), "fp8_e4m3fn"), FP8_E4M3).numpy()


def _codes(value, shape, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        kind = type(value).__name__ if not isinstance(value, np.ndarray) else f"an array of dtype {value.dtype}"
        raise Fail(f"{what}: expected a tensor of integer codes (torch.uint8), got {kind}.")
    if tuple(value.shape) != tuple(shape):
        raise Fail(f"{what}: the shape differs from the input's"
                   + ("." if HIDDEN.get() else f": expected {tuple(shape)}, got {tuple(value.shape)}."))
    if value.size and (value.min() < 0 or value.max() > 255):
        raise Fail(f"{what}: codes must be bit patterns in 0..255.")
    return value.astype(np.int64)


def _kind(v: float) -> str:
    """The class of an input value, shown instead of the value on hidden inputs."""
    if np.isnan(v):
        return "a NaN"
    a = abs(v)
    if np.isinf(v) or a > 448:
        return "a value beyond 448 (saturation)"
    if a == 0:
        return "a zero (mind the sign of -0)"
    if a < 2.0 ** -6:
        return "a subnormal value (below 2**-6)"
    m, e = np.frexp(np.float32(a))
    steps = float(m) * 2 ** 4  # position on the E4M3 grid of this binade, in units of one step
    if steps == np.floor(steps) + 0.5:
        return "a tie (exactly halfway between two E4M3 values: ties go to the even code)"
    return "an ordinary normal value"


def _compare_e4m3(student, x: np.ndarray, what: str, public: bool) -> None:
    got = _codes(student.call("e4m3_encode", x), x.shape, f"e4m3_encode on {what}")
    want = want_e4m3(x).astype(np.int64)
    nan = np.isnan(x)
    bad = ~(got == want) & ~(nan & np.isin(got, NAN_CODES))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        xi, gi, wi = float(x.reshape(-1)[i]), int(got.reshape(-1)[i]), int(want.reshape(-1)[i])
        n = int(bad.sum())
        if public:
            raise Fail(f"e4m3_encode on {what}: {n} of {x.size} codes differ; the first is element {i}, input "
                       f"{xi!r}: you gave 0x{gi:02X}, expected 0x{wi:02X} "
                       f"({float(decode(torch.tensor([wi], dtype=torch.uint8), FP8_E4M3)[0])!r}).")
        raise Fail(f"e4m3_encode on {what}: {n} of {x.size} codes differ; the first difference is on {_kind(xi)}.")


def _compare_nvfp4(student, x: np.ndarray, what: str, public: bool) -> None:
    out = lower_keys(as_dict(student.call("nvfp4_encode", x), f"nvfp4_encode on {what}",))
    as_dict(out, f"nvfp4_encode on {what}", ("codes", "scale_codes", "tensor_scale"))
    q = reference.quantize(torch.from_numpy(x), "nvfp4")
    want_codes = q.codes.numpy().astype(np.int64)
    want_scales = q.scale_codes.reshape(*x.shape[:-1], x.shape[-1] // 16).numpy().astype(np.int64)
    want_t = float(q.tensor_scale)
    t = as_number(out["tensor_scale"], f"nvfp4_encode on {what}: tensor_scale")
    if np.float32(t) != np.float32(want_t) or (t != want_t and abs(t - want_t) > 1e-7 * abs(want_t)):
        shown = f" You gave {t!r}, expected {want_t!r} (amax / (448 * 6), in float32)." if public else ""
        if public and np.float32(t) == two_divisions(x):
            shown += (" Your value is max|x| / 448 / 6: two divisions round twice in float32, and differ from one"
                      " division by 448 * 6 = 2688 for about a third of all max|x|. Divide once.")
        raise Fail(f"nvfp4_encode on {what}: tensor_scale is wrong.{shown} The decode-direction scale is "
                   "max|x| / (448 * 6), NaN ignored, 1 for an all-zero tensor.")
    scales = _codes(out["scale_codes"], want_scales.shape, f"nvfp4_encode on {what}: scale_codes")
    nan_block = np.isin(want_scales, NAN_CODES)
    bad = (scales != want_scales) & ~(nan_block & np.isin(scales, NAN_CODES))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        detail = (f" The first is block {i}: you gave 0x{int(scales.reshape(-1)[i]):02X}, expected "
                  f"0x{int(want_scales.reshape(-1)[i]):02X}." if public else "")
        raise Fail(f"nvfp4_encode on {what}: {int(bad.sum())} of {bad.size} block scale codes differ.{detail} "
                   "Block scale: e4m3(clamp(amax(block) / 6 / tensor_scale, 2**-6, 448)); a NaN block's scale is NaN.")
    codes = _codes(out["codes"], x.shape, f"nvfp4_encode on {what}: codes")
    in_nan_block = np.repeat(nan_block, 16, axis=-1).reshape(x.shape)
    bad = (codes != want_codes) & ~in_nan_block
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        if public:
            detail = (f" The first is element {i}, input {float(x.reshape(-1)[i])!r}: you gave "
                      f"0x{int(codes.reshape(-1)[i]):X}, expected 0x{int(want_codes.reshape(-1)[i]):X}.")
        else:
            detail = " Check ties (to even), the clamp to +-6 and the sign of zero (-0 is code 0x8)."
        raise Fail(f"nvfp4_encode on {what}: {int(bad.sum())} of {x.size} element codes differ.{detail}")


def two_divisions(x: np.ndarray) -> np.float32:
    """The tensor scale as max|x| / 448 / 6 in float32 (a common mistake: two roundings)."""
    amax = np.float32(np.nanmax(np.abs(x))) if x.size and not np.isnan(x).all() else np.float32(0)
    return np.float32(np.float32(amax / np.float32(448)) / np.float32(6))


# ---- inputs ------------------------------------------------------------------------------------

# max|x| = 0.3 (in float32): max|x| / 448 / 6 and max|x| / (448 * 6) round to different float32 values
SCALE_PUBLIC = (np.linspace(-1, 1, 32, dtype=np.float32) * np.float32(0.3)).reshape(1, 32)

def _e4m3_grid() -> np.ndarray:
    codes = torch.arange(0, 0x7F, dtype=torch.uint8)  # non-negative finite codes
    return decode(codes, FP8_E4M3).numpy().astype(np.float64)


def _ties(rng, n: int) -> np.ndarray:
    grid = _e4m3_grid()
    mids = (grid[:-1] + grid[1:]) / 2  # exactly representable in float32 (one more mantissa bit)
    pick = rng.choice(mids, n)
    return (pick * rng.choice([-1.0, 1.0], n)).astype(np.float32)


def _binades(rng, n: int, lo=-20, hi=20) -> np.ndarray:
    return (rng.uniform(1, 2, n) * 2.0 ** rng.integers(lo, hi, n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)


E4M3_PUBLIC = np.array([0.0, -0.0, 1.0, 1.0625, 1.1875, -3.3, 448.0, 464.0, 500.0, -1000.0, np.inf, -np.inf,
                        2.0 ** -9, 2.0 ** -10, 3 * 2.0 ** -10, -(2.0 ** -12), 0.0151, np.nan], np.float32)


def _nvfp4_public() -> np.ndarray:
    g = np.random.default_rng(321)
    x = np.zeros((2, 64), np.float32)
    x[0, :16] = g.standard_normal(16)
    x[0, 16:32] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, -6.0]
    x[0, 32:48] = 0.0  # an all-zero block
    x[0, 48:64] = g.standard_normal(16) * 1e-3
    x[1, :16] = g.standard_normal(16)
    x[1, 3] = 40.0  # an outlier sets the tensor scale
    x[1, 16:32] = g.standard_normal(16) * 100
    x[1, 32:48] = np.nan
    x[1, 32] = 1.0  # a block holding NaN
    x[1, 48:64] = -(2.0 ** -30)
    return x


@check("quantizer", "e4m3_public", 1, "e4m3_encode on 18 values: ties, subnormals, saturation, NaN, -0", hidden=False)
def e4m3_public(student, rng):
    _compare_e4m3(student, E4M3_PUBLIC.copy(), "the public values [0, -0, 1, 1.0625, ..., nan]", public=True)


@check("quantizer", "e4m3_rounding", 1, "e4m3_encode: ties and values across 40 binades, subnormals included")
def e4m3_rounding(student, rng):
    wide = np.clip(_binades(rng, 2000, -31, 9), -448, 448)  # 40 binades, underflow to 0 included; saturation
    x = np.concatenate([_ties(rng, 400), wide, _binades(rng, 300, -16, -6)])  # is e4m3_special's property
    _compare_e4m3(student, x, "ties and values across 40 binades", public=False)


@check("quantizer", "e4m3_special", 1, "e4m3_encode: saturation, infinities, NaN, signed zeros")
def e4m3_special(student, rng):
    x = np.concatenate([rng.uniform(448, 464, 50), rng.uniform(464, 1e30, 50), rng.uniform(0, 2.0 ** -11, 20)])
    x = x * np.where(rng.random(x.size) < 0.5, -1.0, 1.0)
    x = np.concatenate([x, [np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 448.0, -448.0]]).astype(np.float32)
    _compare_e4m3(student, x, "saturation, infinities, NaN and signed zeros", public=False)


@check("quantizer", "nvfp4_public", 1, "nvfp4_encode on a 2x64 tensor (ties, zero, NaN and tiny blocks, an outlier) "
       "and a 1x32 tensor whose max|x| is 0.3 (the tensor scale rounded once)", hidden=False)
def nvfp4_public(student, rng):
    _compare_nvfp4(student, _nvfp4_public(), "the public 2x64 tensor", public=True)
    _compare_nvfp4(student, SCALE_PUBLIC.copy(), "the public 1x32 tensor 0.3 * linspace(-1, 1, 32) (max|x| = 0.3)",
                   public=True)


@check("quantizer", "nvfp4_scales", 1, "nvfp4_encode: heavy tails and block magnitudes across 40 binades")
def nvfp4_scales(student, rng):
    heavy = rng.standard_t(1.5, (8, 256)).astype(np.float32)
    wide = (rng.standard_normal((16, 128)) * 2.0 ** rng.integers(-20, 20, (16, 8)).repeat(16, axis=1)).astype(np.float32)
    _compare_nvfp4(student, heavy, "heavy-tailed weights (Student-t)", public=False)
    _compare_nvfp4(student, wide, "blocks whose magnitudes span 40 binades", public=False)


@check("quantizer", "nvfp4_blocks", 1, "nvfp4_encode: all-zero and NaN blocks, an all-zero tensor, ties, 3-D shapes")
def nvfp4_blocks(student, rng):
    x = rng.standard_normal((4, 3, 64)).astype(np.float32)
    x[0, 0, :16] = 0.0
    x[1, 2, 16:32] = np.nan
    x[2, 1, 40] = np.nan
    x[3] = 0.0
    _compare_nvfp4(student, x, "a 3-D tensor with zero and NaN blocks", public=False)
    _compare_nvfp4(student, np.zeros((2, 32), np.float32), "an all-zero tensor", public=False)
    ties = np.tile(np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0], np.float32), 4).reshape(1, 32)
    ties = ties * rng.choice([-1.0, 1.0], ties.shape).astype(np.float32)
    ties[0, 7::8] = 6.0  # every block's amax is 6 * 448: tensor scale 1, block scale 448, so x / 448 are the ties
    _compare_nvfp4(student, ties * np.float32(448.0), "E2M1 ties", public=False)
