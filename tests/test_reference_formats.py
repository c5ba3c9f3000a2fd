"""Formats and element casts, checked against ml_dtypes by sweeping every bit pattern."""

import ml_dtypes
import numpy as np
import pytest
import torch

import reference as R
from reference.formats import E8M0, FloatFormat
from reference.quantize import decode, encode

ELEMENT_CASTS = {
    "fp16": np.float16,
    "bf16": ml_dtypes.bfloat16,
    "fp8_e4m3": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
}
SMALL = ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1"]
ML_DTYPES = {"e8m0": ml_dtypes.float8_e8m0fnu, **ELEMENT_CASTS, "fp32": np.float32}


FP16_ALL = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
BF16_ALL = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).float()


@pytest.mark.parametrize("name", sorted(ML_DTYPES))
def test_derived_constants_match_ml_dtypes(name):
    fmt = E8M0 if name == "e8m0" else R.FORMATS[name]
    info = ml_dtypes.finfo(ML_DTYPES[name])
    assert fmt.max == float(info.max), name
    assert fmt.min_normal == float(info.smallest_normal), name
    if fmt.min_subnormal is not None:
        assert fmt.min_subnormal == float(info.smallest_subnormal), name
    assert fmt.bits == info.bits
    assert fmt.mantissa_bits == info.nmant


@pytest.mark.parametrize("name", SMALL + ["e8m0"])
def test_every_code_decodes_like_ml_dtypes(name):
    fmt = E8M0 if name == "e8m0" else R.FORMATS[name]
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    # ml_dtypes stores every format one value per byte, so code c is the byte c.
    theirs = codes[: 1 << fmt.bits].view(ML_DTYPES[name]).astype(np.float64)
    ours = fmt.code_values
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    finite = ~np.isnan(ours)
    np.testing.assert_array_equal(ours[finite], theirs[finite])
    np.testing.assert_array_equal(np.signbit(ours[finite]), np.signbit(theirs[finite]))


def test_design_table_facts():
    """DESIGN §2's table, hand-checked numbers (sources: OCP FP8 and MX v1.0 specs)."""
    e4m3, e5m2, e2m1 = R.FORMATS["fp8_e4m3"], R.FORMATS["fp8_e5m2"], R.FORMATS["fp4_e2m1"]
    assert (e4m3.bias, e4m3.max, e4m3.min_normal, e4m3.min_subnormal) == (7, 448.0, 2**-6, 2**-9)
    assert (e5m2.bias, e5m2.max, e5m2.min_normal, e5m2.min_subnormal) == (15, 57344.0, 2**-14, 2**-16)
    assert (e2m1.bias, e2m1.max, e2m1.min_normal, e2m1.min_subnormal) == (1, 6.0, 1.0, 0.5)
    assert (E8M0.bias, E8M0.max, E8M0.min_normal, E8M0.min_subnormal) == (127, 2.0**127, 2.0**-127, None)
    assert list(e2m1.finite_values[e2m1.finite_values >= 0]) == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert R.FORMATS["nvfp4"].bits_per_element == 4.5
    assert R.FORMATS["mxfp4"].bits_per_element == 4.25
    assert R.FORMATS["mxfp8"].bits_per_element == 8.25
    assert 16 / R.FORMATS["nvfp4"].bits_per_element == pytest.approx(3.56, abs=0.005)


@pytest.mark.parametrize("name", sorted(ELEMENT_CASTS))
@pytest.mark.parametrize("source", ["fp16", "bf16"])
def test_cast_sweeps_every_pattern(name, source):
    """Every fp16 and bf16 bit pattern, clamped to +-max (DESIGN §2), equals ml_dtypes' cast."""
    x = FP16_ALL if source == "fp16" else BF16_ALL
    fmt = R.FORMATS[name]
    ours = R.cast(x, name).numpy()
    assert ours.dtype == np.float32 and ours.shape == tuple(x.shape)
    clamped = np.clip(x.numpy(), -fmt.max, fmt.max)  # also maps +-inf to +-max: our cast saturates
    with np.errstate(invalid="ignore"):  # NaN inputs: ml_dtypes float4 has no NaN
        theirs = clamped.astype(ELEMENT_CASTS[name]).astype(np.float32)
    nan = np.isnan(x.numpy())
    assert np.isnan(ours[nan]).all(), f"{name}: NaN input must stay NaN"
    ok = ~nan
    bad = np.flatnonzero((ours[ok] != theirs[ok]) | (np.signbit(ours[ok]) != np.signbit(theirs[ok])))
    assert bad.size == 0, f"{name} from {source}: {bad.size} mismatches, first input {x.numpy()[ok][bad[0]]!r}"


def test_fp32_cast_is_identity():
    x = torch.randn(1000)
    assert torch.equal(R.cast(x, "fp32"), x)


@pytest.mark.parametrize(
    "value, expected",
    # DESIGN §2: ties go to the even code.
    [(0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0),
     (6.5, 6.0), (100.0, 6.0), (0.2, 0.0), (0.26, 0.5), (4.9, 4.0), (5.1, 6.0)],
)
def test_fp4_ties_to_even(value, expected):
    assert R.cast(torch.tensor([value]), "fp4_e2m1").item() == expected
    assert R.cast(torch.tensor([-value]), "fp4_e2m1").item() == -expected


@pytest.mark.parametrize("name", SMALL)
def test_every_code_round_trips(name):
    fmt = R.FORMATS[name]
    codes = torch.arange(1 << fmt.bits, dtype=torch.int64).to(torch.uint8)
    values = decode(codes, fmt)
    keep = ~torch.isnan(values) & ~torch.isinf(values)
    back = encode(R.cast(values[keep], name), fmt)
    assert torch.equal(back, codes[keep]), f"{name}: codes do not round-trip"


def test_saturation_and_specials():
    big = torch.finfo(torch.float32).max  # beyond every format's max, bf16 included
    x = torch.tensor([big, -big, float("inf"), float("-inf"), float("nan"), -0.0])
    for name in ELEMENT_CASTS:
        m = R.FORMATS[name].max
        y = R.cast(x, name)
        assert y[:4].tolist() == [m, -m, m, -m], name
        assert torch.isnan(y[4]) and torch.signbit(y[5]), name


def test_e4m3_max_is_448_not_240():
    """The lab text's FP8Format claims 240 (DESIGN §5.1)."""
    assert R.cast(torch.tensor([447.0, 440.0, 460.0]), "fp8_e4m3").tolist() == [448.0, 448.0, 448.0]
    assert R.FORMATS["fp8_e4m3"].finite_values.max() == 448.0


def test_unknown_format_names_the_valid_ones():
    with pytest.raises(ValueError) as err:
        R.cast(torch.ones(2), "fp8_e4m4")
    msg = str(err.value)
    assert "fp8_e4m4" in msg and "fp8_e4m3" in msg and "nvfp4" in msg and "Did you mean" in msg


def test_cast_refuses_scaled_formats_and_integer_tensors():
    with pytest.raises(ValueError, match="fake_quantize"):
        R.cast(torch.ones(4), "int8")
    with pytest.raises(TypeError, match="int64"):
        R.cast(torch.arange(4), "fp16")
    with pytest.raises(ValueError, match="empty"):
        R.cast(torch.ones(0), "fp16")


def test_format_registry_is_complete():
    need = {"fp32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn", "int8", "int4", "nvfp4", "mxfp4", "mxfp8"}
    assert need == set(R.FORMATS)
    for fmt in R.FORMATS.values():
        assert fmt.max > 0 and fmt.bits_per_element > 0
        if isinstance(fmt, FloatFormat) and fmt.bits <= 16:
            assert fmt.finite_values.max() == fmt.max


@pytest.mark.parametrize("fmt", [f for f in [*R.FORMATS.values(), E8M0] if isinstance(f, FloatFormat) and f.bits <= 8])
def test_narrow_float_names_follow_torch_and_ml_dtypes(fmt):
    """fp8_e4m3fn is torch.float8_e4m3fn and ml_dtypes.float8_e4m3fn; the name says fn / fnu like theirs."""
    dtype = "float" + fmt.name[2:]
    assert hasattr(ml_dtypes, dtype), f"ml_dtypes has no {dtype} for reference format {fmt.name}"
    info = ml_dtypes.finfo(getattr(ml_dtypes, dtype))
    assert float(info.max) == fmt.max
    if fmt.bits == 8:
        assert hasattr(torch, dtype) and torch.finfo(getattr(torch, dtype)).max == fmt.max
    else:  # torch stores FP4 only packed, two per byte
        assert hasattr(torch, dtype + "_x2")


@pytest.mark.parametrize("old, new", [("fp8_e4m3", "fp8_e4m3fn"), ("fp4_e2m1", "fp4_e2m1fn"), ("FP8", "fp8_e4m3fn"),
                                      ("float8_e4m3fn", "fp8_e4m3fn"), ("bfloat16", "bf16"), ("e2m1", "fp4_e2m1fn")])
def test_old_and_dtype_names_stay_aliases(old, new):
    x = torch.tensor([0.3, -1.7, 500.0, 2.0 ** -8])
    assert R.get_format(old) is R.FORMATS[new] is R.FORMATS[old]
    assert R.canonical_name(old) == new
    if R.FORMATS[new].kind == "float":
        assert torch.equal(R.cast(x, old), R.cast(x, new))
    assert R.quantize(x, old).format == new
    with pytest.raises(KeyError):
        R.FORMATS["fp8_e4m4"]
    assert R.canonical_name("tf32") == "tf32"
