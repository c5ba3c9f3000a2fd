"""Exercise ``snr``: calculate_snr, snr_by_format and the best format for Gaussian weights."""

from __future__ import annotations

import math

import numpy as np
import torch

import reference

from .. import answers

from . import exercise, Fail, as_dict, as_number, check, close, ratio_hint, shown

exercise("snr", "Exercise 3: signal-to-noise ratio", order=3)
TOL_DB = 0.01  # the notebook states: SNR within 0.01 dB (float64 vs float32 sums differ far less)
FORMAT_TOL_DB = 0.05


def _snr(student, x: np.ndarray, q: np.ndarray, what: str, public: bool = False) -> None:
    want = answers.calculate_snr(torch.from_numpy(x), torch.from_numpy(q))
    got = as_number(student.call("calculate_snr", x, q), f"calculate_snr on {what}")
    if not close(got, want, 0.0, TOL_DB):
        values = f" You returned {got:.4g} dB; expected {want:.4g} dB." if public else ""  # public input only
        raise Fail(f"calculate_snr on {what} is off by more than {TOL_DB} dB.{values}{ratio_hint(got, want)}")


@check("snr", "snr_known_value", 1, "original [3, 4] vs quantized [3, 3]", hidden=False)
def known_value(student, rng):
    _snr(student, np.array([3.0, 4.0], np.float32), np.array([3.0, 3.0], np.float32), "original [3, 4], quantized [3, 3]",
         public=True)


def _fixed(n, scale=1.0, seed=2024):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


@check("snr", "snr_gaussian_int8_example", 0.5, "1000 Gaussian weights (seed 2024) vs their INT8 quantization",
       hidden=False)
def public_gaussian_int8(student, rng):
    x = _fixed(1000, 0.05)
    q = reference.fake_quantize(torch.from_numpy(x), "int8").numpy()
    _snr(student, x, q, "1000 Gaussian weights vs their INT8 quantization", public=True)


@check("snr", "snr_gaussian_int8", 0.5, "Gaussian weights vs their INT8 quantization")
def gaussian_int8(student, rng):
    x = rng.standard_normal(int(rng.integers(2000, 6000))).astype(np.float32) * float(rng.uniform(0.01, 0.2))
    q = reference.fake_quantize(torch.from_numpy(x), "int8").numpy()
    _snr(student, x, q, "Gaussian weights vs their INT8 quantization")


@check("snr", "snr_half_amplitude_example", 0.5, "original [1, 2, 3, 4] vs quantized [0.5, 1, 1.5, 2]", hidden=False)
def public_half_amplitude(student, rng):
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    _snr(student, x, x * 0.5, "original [1, 2, 3, 4], quantized [0.5, 1, 1.5, 2] (the signal is the ORIGINAL's power)",
         public=True)


@check("snr", "snr_half_amplitude", 0.5, "a quantized copy at half the amplitude (argument order matters)")
def half_amplitude(student, rng):
    x = rng.standard_normal(int(rng.integers(500, 1500))).astype(np.float32)
    _snr(student, x, (x * 0.5).astype(np.float32), "a copy scaled by 0.5 (is the signal the ORIGINAL's power?)")


@check("snr", "snr_identical", 0.5, "identical tensors (no noise)", hidden=False)
def identical(student, rng):
    x = rng.standard_normal(256).astype(np.float32)
    got = student.call("calculate_snr", x, x.copy())
    got = as_number(got, "calculate_snr on identical tensors")
    if not (math.isinf(got) and got > 0):
        raise Fail("calculate_snr on identical tensors must return float('inf'): the noise power is 0.")
    # inf earns credit only from an SNR that measures: finite with noise, and lower with more of it
    noisy = [as_number(student.call("calculate_snr", x, (x + x[::-1] * k).astype(np.float32)),
                       f"calculate_snr on a copy with {k:g}x noise") for k in (0.1, 0.5)]
    if not (all(math.isfinite(v) for v in noisy) and noisy[0] > noisy[1]):
        raise Fail("calculate_snr must measure the noise: identical tensors give inf, but the same 256 values "
                   f"plus noise at 0.1x and 0.5x their scale gave {noisy[0]:.4g} and {noisy[1]:.4g} dB (finite, "
                   "and lower with more noise).")


@check("snr", "snr_2d_example", 0.25, "a 2x3 tensor with values in the thousands", hidden=False)
def public_any_shape(student, rng):
    x = np.array([[1000.0, -2000.0, 3000.0], [4000.0, -5000.0, 6000.0]], np.float32)
    _snr(student, x, x + np.float32(100.0), "a 2x3 tensor [[1000, -2000, 3000], [4000, -5000, 6000]] + 100", public=True)


@check("snr", "snr_any_shape", 0.25, "2-D tensors with large values and 10 dB of noise")
def any_shape(student, rng):
    x = (rng.standard_normal((32, 48)) * 1000).astype(np.float32)
    q = (x + rng.standard_normal(x.shape) * 1000 * math.sqrt(0.1)).astype(np.float32)
    _snr(student, x, q, "2-D tensors with large values")


@check("snr", "snr_by_format_example", 0.5, "snr_by_format on 1024 Gaussian weights (seed 2024)", hidden=False)
def public_by_format(student, rng):
    _by_format(student, _fixed(1024, 0.02))


@check("snr", "snr_by_format", 0.5, "snr_by_format on Gaussian weights")
def by_format(student, rng):
    _by_format(student, rng.standard_normal(16 * int(rng.integers(200, 600))).astype(np.float32)
               * float(rng.uniform(0.02, 0.1)))


def _by_format(student, w):
    got = as_dict(student.call("snr_by_format", w), "snr_by_format(weights)", ("int8", "int4", "fp8", "fp4"))
    t = torch.from_numpy(w)
    spec = {"int8": ("int8", {}), "int4": ("int4", {}), "fp8": ("fp8_e4m3fn", {}), "fp4": ("nvfp4", {})}
    wrong = []
    for key, (name, opts) in spec.items():
        want = answers.calculate_snr(t, reference.fake_quantize(t, name, **opts))
        value = as_number(got[key], f"snr_by_format(weights)[{key!r}]")
        if not close(value, want, 0.0, FORMAT_TOL_DB):
            wrong.append(key)
    if wrong:
        raise Fail(f"snr_by_format on Gaussian weights: the SNR of {', '.join(wrong)} is off by more than "
                   f"{FORMAT_TOL_DB} dB. Use the notebook's quantizers (symmetric_quantize, fp8_quantize, "
                   "nvfp4_quantize) and your calculate_snr.")


def _table_measures(student, w: np.ndarray) -> None:
    """The best format earns credit only with an snr_by_format that measures its input: its table for
    Gaussian weights must differ from its table for heavy-tailed (Laplace) weights."""
    tables = [as_dict(student.call("snr_by_format", x), f"snr_by_format on {what}", ("int8", "int4", "fp8", "fp4"))
              for x, what in ((w, "Gaussian weights"),
                              (np.random.default_rng(7).laplace(size=w.size).astype(np.float32) * float(np.std(w)),
                               "Laplace weights"))]
    values = [[as_number(t[k], f"snr_by_format[{k!r}]") for k in ("int8", "int4", "fp8", "fp4")] for t in tables]
    if values[0] == values[1] or not all(math.isfinite(v) for row in values for v in row):
        raise Fail("BEST_FORMAT_FOR_GAUSSIAN earns credit only together with an snr_by_format that measures its "
                   "input: yours returned the same (or a non-finite) table for Gaussian and for Laplace weights.")


@check("snr", "best_format_is_a_key", 0.5, "BEST_FORMAT_FOR_GAUSSIAN is one of snr_by_format's keys", hidden=False)
def public_best_format(student, rng):
    _table_measures(student, _fixed(1024, 0.02))
    got = student.get("BEST_FORMAT_FOR_GAUSSIAN")
    if not isinstance(got, str) or got.strip().lower() not in ("int8", "int4", "fp8", "fp4"):
        raise Fail(f"BEST_FORMAT_FOR_GAUSSIAN must be one of 'int8', 'int4', 'fp8', 'fp4'; it is {shown(got)}.")


@check("snr", "best_format", 0.5, "BEST_FORMAT_FOR_GAUSSIAN: which format preserves Gaussian weights best")
def best_format(student, rng):
    got = student.get("BEST_FORMAT_FOR_GAUSSIAN")
    if not isinstance(got, str):
        raise Fail("BEST_FORMAT_FOR_GAUSSIAN must be a string such as 'int4'.")
    x = torch.from_numpy(rng.standard_normal(16 * 1024).astype(np.float32))
    _table_measures(student, x.numpy())
    snrs = {k: answers.calculate_snr(x, reference.fake_quantize(x, n))
            for k, n in (("int8", "int8"), ("int4", "int4"), ("fp8", "fp8_e4m3fn"), ("fp4", "nvfp4"))}
    if got.strip().lower() != max(snrs, key=snrs.get):
        raise Fail("BEST_FORMAT_FOR_GAUSSIAN is not the format with the highest SNR in your snr_by_format table.")
