"""Number formats as data: every derived number comes from the bit layout.

Three kinds of format, one frozen dataclass each:

* :class:`FloatFormat` -- a sign/exponent/mantissa element format (fp32 ... fp4_e2m1,
  and the unsigned E8M0 scale of the MX formats).
* :class:`IntFormat` -- a two's-complement integer format (int8, int4).
* :class:`BlockFormat` -- an element format plus one scale per block of the last
  dimension (nvfp4, mxfp4, mxfp8).

``FORMATS`` maps a name to its format object. Nothing here is typed in that the bit
layout already determines: ``max``, the smallest normal and subnormal, and the list of
finite values are computed from the fields.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

# How a float format spends its all-ones exponent field.
#   "ieee": all-ones exponent is inf (mantissa 0) or NaN (mantissa != 0)   -- fp32, fp16, bf16, E5M2
#   "fn":   only S.1111.111 is NaN; the rest of the top binade holds normals, no inf -- E4M3FN
#   "none": every code is a finite number, no inf, no NaN                   -- E2M1
#   "e8m0": unsigned, no mantissa, no subnormals; 0xFF is NaN                -- MX scale (OCP MX v1.0 §5.4)
Specials = Literal["ieee", "fn", "none", "e8m0"]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point element format, described by its bit layout."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    specials: Specials = "ieee"
    description: str = ""

    kind = "float"

    @property
    def signed(self) -> bool:
        return self.specials != "e8m0"

    @property
    def bits(self) -> int:
        return int(self.signed) + self.exponent_bits + self.mantissa_bits

    @property
    def bits_per_element(self) -> float:
        return float(self.bits)

    @property
    def _max_exponent_field(self) -> int:
        all_ones = (1 << self.exponent_bits) - 1
        # IEEE reserves the all-ones field for inf/NaN and E8M0 for NaN; FN and E2M1 keep it for numbers.
        return all_ones - 1 if self.specials in ("ieee", "e8m0") else all_ones

    @property
    def _max_mantissa_at_top(self) -> int:
        all_ones = (1 << self.mantissa_bits) - 1
        # E4M3FN: S.1111.111 is the only NaN, so the top binade ends at mantissa 110.
        return all_ones - 1 if self.specials == "fn" else all_ones

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest binade."""
        return self._max_exponent_field - self.bias

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal binade."""
        return (0 if self.specials == "e8m0" else 1) - self.bias

    @property
    def max(self) -> float:
        """Largest finite value."""
        frac = 1 + self._max_mantissa_at_top / (1 << self.mantissa_bits)
        return float(frac * 2.0**self.emax)

    @property
    def min_normal(self) -> float:
        return float(2.0**self.emin)

    @property
    def min_subnormal(self) -> float | None:
        """Smallest positive subnormal, or None for a format without subnormals (E8M0)."""
        if self.specials == "e8m0":
            return None
        return float(2.0 ** (self.emin - self.mantissa_bits))

    @property
    def has_nan(self) -> bool:
        return self.specials != "none"

    def decode(self, code: int) -> float:
        """Return the value of one bit pattern (an int in ``[0, 2**bits)``)."""
        if not 0 <= code < (1 << self.bits):
            raise ValueError(f"{self.name}: code {code} is outside [0, {1 << self.bits})")
        m_mask = (1 << self.mantissa_bits) - 1
        e_mask = (1 << self.exponent_bits) - 1
        mant = code & m_mask
        expo = (code >> self.mantissa_bits) & e_mask
        sign = -1.0 if self.signed and (code >> (self.bits - 1)) & 1 else 1.0
        if self.specials == "e8m0":
            return float("nan") if expo == e_mask else 2.0 ** (expo - self.bias)
        if expo == e_mask:
            if self.specials == "ieee":
                return sign * float("inf") if mant == 0 else float("nan")
            if self.specials == "fn" and mant == m_mask:
                return float("nan")
        if expo == 0:
            return sign * mant * 2.0 ** (self.emin - self.mantissa_bits)
        return sign * (1 + mant / (1 << self.mantissa_bits)) * 2.0 ** (expo - self.bias)

    @functools.cached_property
    def code_values(self) -> np.ndarray:
        """Value of every code, indexed by code (float64). Only for formats of <= 16 bits."""
        if self.bits > 16:
            raise ValueError(f"{self.name} has 2**{self.bits} codes: too many to enumerate")
        return np.array([self.decode(c) for c in range(1 << self.bits)], dtype=np.float64)

    @functools.cached_property
    def finite_values(self) -> np.ndarray:
        """Every distinct finite value, sorted ascending (-0 and +0 count once)."""
        v = self.code_values
        return np.unique(v[np.isfinite(v)]) + 0.0  # + 0.0 turns -0 into +0

    @property
    def description_line(self) -> str:
        return self.description or f"E{self.exponent_bits}M{self.mantissa_bits}"


@dataclass(frozen=True)
class IntFormat:
    """A signed two's-complement integer format: codes in ``[-2**(bits-1), 2**(bits-1) - 1]``."""

    name: str
    bits: int
    description: str = ""

    kind = "int"

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def max(self) -> float:
        return float(self.qmax)

    @property
    def bits_per_element(self) -> float:
        return float(self.bits)

    @property
    def description_line(self) -> str:
        return self.description or f"{self.bits}-bit integer"


ScaleRule = Literal["nvfp4", "mx_floor"]


@dataclass(frozen=True)
class BlockFormat:
    """Element format + one scale per ``block_size`` elements of the last dimension.

    ``tensor_scale`` is True for NVFP4, whose E4M3 block scales are themselves scaled by
    one FP32 number per tensor (DESIGN §2). The per-tensor FP32 scale is not counted in
    ``bits_per_element``: it is 32 bits per tensor, not per element.
    """

    name: str
    element: FloatFormat
    scale: FloatFormat
    block_size: int
    rule: ScaleRule
    tensor_scale: bool = False
    description: str = ""

    kind = "block"

    @property
    def bits(self) -> int:
        return self.element.bits

    @property
    def bits_per_element(self) -> float:
        return self.element.bits + self.scale.bits / self.block_size

    @property
    def max(self) -> float:
        """Largest magnitude element x block scale can encode (before any per-tensor scale)."""
        return self.element.max * self.scale.max

    @property
    def description_line(self) -> str:
        return self.description


Format = Union[FloatFormat, IntFormat, BlockFormat]

FP32 = FloatFormat("fp32", 8, 23, 127, "ieee", "IEEE 754 binary32")
FP16 = FloatFormat("fp16", 5, 10, 15, "ieee", "IEEE 754 binary16")
BF16 = FloatFormat("bf16", 8, 7, 127, "ieee", "bfloat16: fp32's range, 8 significant bits")
# Names follow torch's and ml_dtypes' dtypes (float8_e4m3fn -> "fp8_e4m3fn"; fn: finite, no inf;
# fnu: also no negative values); the lab's older short names stay as aliases (ALIASES below).
FP8_E4M3 = FloatFormat("fp8_e4m3fn", 4, 3, 7, "fn", "OCP FP8 E4M3FN: finite, one NaN per sign")
FP8_E5M2 = FloatFormat("fp8_e5m2", 5, 2, 15, "ieee", "OCP FP8 E5M2: IEEE-like with inf")
FP4_E2M1 = FloatFormat("fp4_e2m1fn", 2, 1, 1, "none", "OCP FP4 E2M1: 15 values, no inf/NaN")
E8M0 = FloatFormat("fp8_e8m0fnu", 8, 0, 127, "e8m0", "OCP MX E8M0 scale: powers of two 2^-127..2^127")
INT8 = IntFormat("int8", 8, "8-bit integer, symmetric per-tensor scale")
INT4 = IntFormat("int4", 4, "4-bit integer, symmetric per-tensor scale")
NVFP4 = BlockFormat(
    "nvfp4", FP4_E2M1, FP8_E4M3, 16, "nvfp4", tensor_scale=True,
    description="NVIDIA FP4: E2M1 x E4M3 scale per 16 x FP32 per tensor",
)
MXFP4 = BlockFormat("mxfp4", FP4_E2M1, E8M0, 32, "mx_floor", description="OCP MXFP4: E2M1 x E8M0 scale per 32")
MXFP8 = BlockFormat("mxfp8", FP8_E4M3, E8M0, 32, "mx_floor", description="OCP MXFP8: E4M3 x E8M0 scale per 32")

# Other names for the same formats: the lab text's (fp8, fp4, e4m3 ...), this package's names
# before they followed torch's (fp8_e4m3, fp4_e2m1, e8m0), and the dtype names of torch/ml_dtypes
# (float8_e4m3fn, bfloat16 ...).
ALIASES = {
    "fp8": "fp8_e4m3fn", "e4m3": "fp8_e4m3fn", "e4m3fn": "fp8_e4m3fn", "fp8_e4m3": "fp8_e4m3fn",
    "e5m2": "fp8_e5m2",
    "fp4": "fp4_e2m1fn", "e2m1": "fp4_e2m1fn", "fp4_e2m1": "fp4_e2m1fn",
    "float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
    "float8_e4m3fn": "fp8_e4m3fn", "float8_e5m2": "fp8_e5m2", "float4_e2m1fn": "fp4_e2m1fn",
}


class _Formats(dict):
    """Formats by canonical name; indexing by an alias (``FORMATS["fp8_e4m3"]``) also works."""

    def __missing__(self, key):
        if isinstance(key, str) and key.lower() in ALIASES:
            return self[ALIASES[key.lower()]]
        raise KeyError(key)


FORMATS: dict[str, Format] = _Formats(
    (f.name, f) for f in (FP32, FP16, BF16, FP8_E4M3, FP8_E5M2, FP4_E2M1, INT8, INT4, NVFP4, MXFP4, MXFP8)
)


def get_format(name: str) -> Format:
    """Look a format up by name (case-insensitive; lab aliases such as ``fp8`` accepted)."""
    if not isinstance(name, str):
        raise TypeError(f"format name must be a string such as 'fp8_e4m3fn', got {type(name).__name__} {name!r}")
    try:
        return FORMATS[name.lower()]  # aliases resolve in FORMATS itself
    except KeyError:
        valid = sorted(FORMATS) + sorted(ALIASES)
        close = difflib.get_close_matches(name.lower(), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown format {name!r}.{hint} Valid names: {', '.join(sorted(FORMATS))} "
            f"(aliases: {', '.join(f'{a}={b}' for a, b in sorted(ALIASES.items()))})."
        ) from None


def canonical_name(name: str) -> str:
    """The canonical name of a format given any of its names (``"fp8_e4m3"`` -> ``"fp8_e4m3fn"``);
    a name this package does not model (``"tf32"``, ``"fp6_e2m3"``) is returned lower-cased."""
    try:
        return get_format(name).name
    except ValueError:
        return name.lower()
