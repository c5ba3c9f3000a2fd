"""Exercise ``activations``: INT8 activations per tensor and per token, and the W8A8 metric.

``act_int8_per_tensor(x)`` / ``act_int8_per_token(x)``: symmetric INT8 of a ``(tokens, features)``
matrix with ``scale = max|x| / 127`` (per tensor) or ``max|row| / 127`` (per row), the scale 1 where
the maximum is 0, ``clamp(round(x / scale), -127, 127) * scale`` rounding half to even, all in float32.
Compared **bit for bit** with :func:`labs.lab322.answers.act_int8_per_tensor` / ``act_int8_per_token``
(``reference.fake_quantize``): the notebook asks for exactly this arithmetic.

``w8a8_cosines(sentences)``: the mean cosine vs FP32 with INT8 per-channel weights, without and with
activation quantization, within :data:`COS_TOL` of :func:`labs.lab322.answers.w8a8` on the same sentences.

Public checks: a hand-made 4x8 matrix (exact ties at scale 1, an all-zero row, a row whose largest
magnitude is negative, a row 1000x smaller than the others) and the input of MiniLM's ``0.ffn_down`` on two
public sentences; W8A8 on the first 10 public sentences. Hidden checks: a fixed synthetic matrix first
(rows 2**12 apart, a negative extreme, exact ties, a zero row: every mistake class the hints name fails on
it), then a real activation matrix of a layer drawn from the seed on hidden sentences and a seeded
synthetic matrix; W8A8 on 10 hidden sentences.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from reference import minilm

from . import HIDDEN, LAYERS, Fail, as_dict, as_number, check, environment, exercise, hidden_sentences, public_sentences
from .. import answers as A

exercise("activations", "Exercise 3: INT8 activations (per tensor, per token) and W8A8", order=3)

COS_TOL = 2e-4  # per-token INT8 inputs flip a rounding where float sums differ (e.g. thread count): ~2e-5
FUNCTIONS = {"act_int8_per_tensor": A.act_int8_per_tensor, "act_int8_per_token": A.act_int8_per_token}
W8A8_KEYS = ("weights_only", "per_tensor", "per_token")


# ---- inputs ------------------------------------------------------------------------------------

def public_matrix() -> np.ndarray:
    """4 x 8: exact ties at scale 1, an all-zero row, a negative row extreme, a row 1000x smaller."""
    return np.array([
        [127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.2],   # per tensor and per token: scale 1, ties go to even
        [0.0] * 8,                                         # an all-zero row stays zero
        [-2.0, 1.0, 0.5, 0.25, -0.1, 0.0, 1.9, -1.99],    # the largest magnitude is negative
        [0.1, -0.03, 0.02, 0.0, 0.005, -0.01, 0.04, 0.001],  # per tensor: it rounds to 0; per token: its own scale
    ], np.float32)


def fixed_hidden_matrix() -> np.ndarray:
    """6 x 64: rows 2**12 apart, a negative extreme, exact ties at a power-of-two scale, a zero row."""
    r = np.random.default_rng(322)
    x = r.standard_normal((6, 64)) * (2.0 ** np.array([[-6], [6], [0], [-3], [0], [3]]))
    x[2] = (r.integers(-126, 126, 64) + 0.5) * 2.0 ** -4  # exact ties, scale 2**-4 per token
    x[2, 5] = 127 * 2.0 ** -4
    x[3, 7] = -40 * np.abs(x[3]).max()  # the row's extreme is negative
    x[4] = 0.0
    return x.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _activations(texts: tuple[str, ...], index: int) -> np.ndarray:
    seen = []

    def capture(x):
        if len(seen) == index:
            seen.append(x.clone())
        else:
            seen.append(None)
        return x

    minilm.encode(list(texts), act_quant=capture)
    a = seen[index].numpy()
    a.setflags(write=False)
    return a


@environment
def activations(texts, index: int) -> np.ndarray:
    """The input of the ``index``-th linear layer (model order) on ``texts``: (tokens, features) float32."""
    return _activations(tuple(texts), index)


def seeded_matrix(rng: np.random.Generator) -> np.ndarray:
    rows, cols = int(rng.integers(8, 40)), 16 * int(rng.integers(2, 40))
    x = rng.standard_normal((rows, cols)) * 2.0 ** rng.integers(-10, 10, (rows, 1))
    x[int(rng.integers(rows))] = 0.0
    r, e = int(rng.integers(rows)), int(rng.integers(-8, 8))
    x[r] = (rng.integers(-126, 126, cols) + 0.5) * 2.0 ** e
    x[r, int(rng.integers(cols))] = -127 * 2.0 ** e
    return x.astype(np.float32)


# ---- the quantizers ----------------------------------------------------------------------------

def _returned(value, shape, what: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            pass
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        kind = "nothing (None)" if value is None else (
            f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}")
        raise Fail(f"{what}: expected a tensor of dequantized values shaped like x, got {kind}.")
    if tuple(value.shape) != tuple(shape):
        raise Fail(f"{what}: the shape differs from x's"
                   + ("." if HIDDEN.get() else f": expected {tuple(shape)}, got {tuple(value.shape)}."))
    return value.astype(np.float64)


def _int8(t: torch.Tensor, amax: torch.Tensor, qmax: float = 127.0, ties_away: bool = False) -> torch.Tensor:
    scale = amax / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    r = t / scale
    q = torch.sign(r) * torch.floor(r.abs() + 0.5) if ties_away else torch.round(r)
    return torch.clamp(q, -127, 127) * scale


def _mistake(got: np.ndarray, x: np.ndarray, name: str) -> str:
    """The likely mistake, from which alternative the values match (no value is shown)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    per_token = name == "act_int8_per_token"
    amax = t.abs().amax(dim=1, keepdim=True) if per_token else t.abs().max()
    want = FUNCTIONS[name](t).numpy().astype(np.float64)
    scale = torch.where(amax / 127 > 0, amax / 127, torch.ones_like(amax))
    if np.array_equal(got, torch.clamp(torch.round(t / scale), -127, 127).numpy().astype(np.float64)):
        return " Your values are the integer codes q: return the dequantized values q * scale."
    candidates = (
        ("one scale for the whole matrix (per tensor): act_int8_per_token needs one scale per row, "
         "the max over dim 1 (keepdim=True)", lambda: _int8(t, t.abs().max())) if per_token else
        ("one scale per row (per token): act_int8_per_tensor uses one scale, max|x| over the whole matrix",
         lambda: _int8(t, t.abs().amax(dim=1, keepdim=True))),
        ("a scale from the largest value, not the largest magnitude: use max|x| (x.abs().max()), so a row whose "
         "extreme is negative is not clipped",
         lambda: _int8(t, t.amax(dim=1, keepdim=True) if per_token else t.max())),
        ("one scale per column (dim 0): a token is a ROW of the (tokens, features) matrix",
         lambda: _int8(t, t.abs().amax(dim=0, keepdim=True))),
        ("the scale max / 128 (or / 255): symmetric INT8 uses -127..127, scale = max|x| / 127",
         lambda: _int8(t, amax, 128.0)),
        ("rounding ties away from zero (floor(|r| + 0.5)): ties go to the even level (torch.round)",
         lambda: _int8(t, amax, ties_away=True)),
        ("multiplying by the reciprocal (x * (127 / max)): divide, x / scale, as the lab's quantizer does",
         lambda: torch.clamp(torch.round(t * torch.where(amax > 0, 127 / amax, torch.ones_like(amax))), -127, 127)
         * scale),
        ("arithmetic in float64: compute in float32, as the notebook's tensors are",
         lambda: _int8(t.double(), amax.double()).float()),
    )
    for why, fn in candidates:
        with np.errstate(all="ignore"):
            alt = fn().numpy().astype(np.float64)
        if np.array_equal(got, alt, equal_nan=True) and not np.array_equal(alt, want, equal_nan=True):
            return f" Your values look like {why}."
    return ""


def _compare(student, name: str, x: np.ndarray, what: str, public: bool) -> None:
    x = np.array(x, dtype=np.float32)  # a writable copy
    got = _returned(student.call(name, x), x.shape, f"{name} on {what}")
    if not np.isfinite(got).all():
        zero = bool((np.abs(x).max(axis=1) == 0).any())
        raise Fail(f"{name} on {what}: your result holds NaN or inf"
                   + (" (an all-zero row or matrix gives 0 / 0: give it the scale 1, so it stays zero)." if zero else "."))
    want = FUNCTIONS[name](torch.from_numpy(x)).numpy().astype(np.float64)
    bad = got != want
    if not bad.any():
        return
    i, j = (int(v) for v in np.argwhere(bad)[0])
    if public:
        detail = (f" {int(bad.sum())} of {x.size} values differ; the first is row {i}, column {j}, x = {float(x[i, j])!r}: "
                  f"you gave {float(got[i, j])!r}, expected {float(want[i, j])!r}.")
    else:
        detail = ""
    raise Fail(f"{name} on {what}: the values are not INT8 fake quantization with "
               f"{'one scale per row' if name.endswith('token') else 'one scale'} max|x| / 127, bit for bit."
               f"{detail}{_mistake(got, x, name)}")


@check("activations", "act_public", 1,
       "both activation quantizers on a 4x8 matrix (ties, a zero row, a negative extreme, a small row) and on the "
       "input of MiniLM's 0.ffn_down for two sentences", hidden=False)
def act_public(student, rng):
    real = activations(public_sentences(2), 5)
    for name in FUNCTIONS:
        _compare(student, name, public_matrix(), "the public 4x8 matrix", public=True)
        _compare(student, name, real, "the input of 0.ffn_down for SENTENCES[:2] (tokens x 1536)", public=True)


@check("activations", "act_hidden", 1.5,
       "both activation quantizers on other matrices: synthetic (ties, zero rows, rows of very different sizes) "
       "and real activations of other layers and sentences")
def act_hidden(student, rng):
    index = int(rng.integers(len(LAYERS)))
    real = activations(hidden_sentences()[:3], index)
    synthetic = seeded_matrix(rng)
    for name in FUNCTIONS:
        _compare(student, name, fixed_hidden_matrix(), "a synthetic matrix (rows 2**12 apart, a negative extreme, "
                 "exact ties, a zero row)", public=False)
        _compare(student, name, real, "real activations of a MiniLM layer", public=False)
        _compare(student, name, synthetic, "another synthetic matrix", public=False)


# ---- W8A8 --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _w8a8(texts: tuple[str, ...]) -> dict[str, float]:
    return {k: m["cosine"] for k, m in A.w8a8(list(texts)).items()}


@environment
def w8a8_reference(texts) -> dict[str, float]:
    return _w8a8(tuple(texts))


def _w8a8_hint(got: dict[str, float], want: dict[str, float]) -> str:
    def near(a, b):
        return abs(a - b) <= COS_TOL
    if near(got["per_tensor"], want["per_token"]) and near(got["per_token"], want["per_tensor"]):
        return " Your per_tensor and per_token values are swapped."
    if near(got["per_token"], want["per_tensor"]):
        return " Your per_token value is the per-tensor one: quantize with act_int8_per_token there."
    if all(near(got[k], 1.0) for k in W8A8_KEYS) or near(got["weights_only"], 1.0):
        return (" Your weights_only value is 1: quantize the weights (INT8 per-channel, quantized('int8_per_channel'))"
                " and pass them to encode.")
    if near(got["weights_only"], want["weights_only"]) and not near(got["per_token"], want["per_token"]):
        return " Your weight-only value is right: check the activation quantizers (the checks above) and act_quant=."
    return ""


def _compare_w8a8(student, texts, what: str, public: bool) -> None:
    got = as_dict(student.call("w8a8_cosines", list(texts)), f"w8a8_cosines on {what}", W8A8_KEYS)
    got = {k: as_number(got[k], f"w8a8_cosines on {what}, {k!r}") for k in W8A8_KEYS}
    want = w8a8_reference(texts)
    wrong = [k for k in W8A8_KEYS if not (math.isfinite(got[k]) and abs(got[k] - want[k]) <= COS_TOL)]
    if wrong:
        detail = ("".join(f" {k}: you gave {got[k]:.6f}, expected {want[k]:.6f}." for k in wrong) if public else
                  f" Wrong: {', '.join(wrong)}.")
        raise Fail(f"w8a8_cosines on {what}: the mean cosine against FP32 (INT8 per-channel weights; activations "
                   f"unquantized, per tensor, per token) differs by more than {COS_TOL}.{detail}{_w8a8_hint(got, want)}")


@check("activations", "w8a8_public", 1, "w8a8_cosines on the first 10 sentences", hidden=False)
def w8a8_public(student, rng):
    _compare_w8a8(student, public_sentences(10), "SENTENCES[:10]", public=True)


@check("activations", "w8a8_hidden", 1.5, "w8a8_cosines on hidden sentences")
def w8a8_hidden(student, rng):
    _compare_w8a8(student, hidden_sentences()[:10], "hidden sentences", public=False)
