"""Lab v2 (issue 12): fair grading, the exercise contract, the quantizer exercise, memory rules.

The checks are exercised in this process through helpers.LocalStudent (same plain-data
encoding as the sandbox, no sandbox), so many seeds and answer variants stay fast.
"""

from __future__ import annotations

import math

import pytest

from grader.course import demo
from labs.lab321 import LAB
from helpers import FULL, LocalStudent, local_scores

SEEDS = ["lab321-2026-autumn-6c1f9e", "term-a", "term-b", "x", "0"]


def _solution_with(cell: str, old: str, new: str) -> dict[str, str]:
    src = demo.solution_sources("lab321")[cell]
    assert old in src, f"{old!r} not in {cell}"
    return {cell: src.replace(old, new)}


@pytest.fixture(scope="module")
def mistake_costs():
    """points lost and failed checks per demo mistake, per seed."""
    out = {}
    for sid, (_, fn) in LAB.mistakes.items():
        student = LocalStudent(fn(demo.solution_sources("lab321")))
        out[sid] = [local_scores(student, seed) for seed in SEEDS]
    return out


def test_model_solution_full_marks_under_every_seed():
    student = LocalStudent()
    for seed in SEEDS:
        scores, failed = local_scores(student, seed)
        assert failed == {} and scores == FULL, (seed, failed)


def test_each_demo_mistake_costs_the_same_under_every_seed(mistake_costs):
    for sid, runs in mistake_costs.items():
        first_scores, first_failed = runs[0]
        assert first_failed, f"{sid} costs nothing"
        for (scores, failed), seed in zip(runs, SEEDS):
            assert set(failed) == set(first_failed), (sid, seed, set(failed) ^ set(first_failed))
            assert scores == first_scores, (sid, seed)


# Answers that follow the notebook's text, each a one-place edit of the model solution: full marks.
HONEST_VARIANTS = {
    "uppercase names": [("memory_solution", 'ladder = {"inference": ("bf16", "fp8", "fp4")',
                         'ladder = {"inference": ("BF16", "FP8", "FP4")'),
                        ("memory_solution", "next((p for p in ladder if table[p]",
                         "next((p for p in ladder if table[p.lower()]"),
                        ("advisor_solution", 'return {"precision": p,', 'return {"precision": p.upper(),'),
                        ("advisor_solution", 'return {"precision": p, "memory_gb": mem, "fits": False',
                         'return {"precision": p.upper(), "memory_gb": mem, "fits": False')],
    "rounded to 1 decimal": [("memory_solution", '{"memory_gb": mem,', '{"memory_gb": round(mem, 1),'),
                             ("advisor_solution", 'return {"precision": p, "memory_gb": mem, "fits": True',
                              'return {"precision": p, "memory_gb": round(mem, 1), "fits": True')],
    "rounded to 2 decimals": [("memory_solution", '{"memory_gb": mem,', '{"memory_gb": round(mem, 2),')],
    "0-d tensor SNR": [("snr_solution", 'return float(10 * torch.log10(original.pow(2).sum() / noise))',
                        'return 10 * torch.log10(original.pow(2).sum() / noise)'),
                       ("snr_solution", 'return float("inf")', 'return torch.tensor(float("inf"))')],
    "numpy SNR": [("snr_solution", 'return float(10 * torch.log10(original.pow(2).sum() / noise))',
                   'return np.float64(10 * torch.log10(original.pow(2).sum() / noise).item())')],
}


def _apply(edits):
    sources = demo.solution_sources("lab321")
    for cell, old, new in edits:
        assert old in sources[cell], (cell, old)
        sources[cell] = sources[cell].replace(old, new, 1)
    return sources


@pytest.mark.parametrize("variant", sorted(HONEST_VARIANTS))
def test_honest_variants_get_full_marks_and_pass_the_check_cells(variant):
    sources = _apply(HONEST_VARIANTS[variant])
    student = LocalStudent(sources, run_check_cells=True)  # a check cell that rejects it raises here
    for seed in SEEDS[:2]:
        scores, failed = local_scores(student, seed)
        assert failed == {}, (variant, seed, failed)


def test_nvfp4_scale_overhead_is_accepted():
    """Common mistake #2 followed in the exercise: fp4 at 4.5 bits (0.5625 B/param)."""
    sources = _apply([("memory_solution", "weights = calculate_model_memory(params_billions, p)",
                       "weights = params_billions * (0.5625 if p == 'fp4' else BYTES_PER_PARAM[p])"),
                      ("advisor_solution", "weights = calculate_model_memory(model_params_billions, p)",
                       "weights = model_params_billions * (0.5625 if p == 'fp4' else BYTES_PER_PARAM[p])")])
    for seed in SEEDS[:3]:
        assert local_scores(LocalStudent(sources), seed)[1] == {}


def test_feedback_names_units_and_whole_gb_rounding():
    gib = LocalStudent(LAB.mistakes["memory_gib"][1](demo.solution_sources("lab321")))
    _, failed = local_scores(gib, SEEDS[0])
    assert "GiB" in failed["memory_34b_inference"]
    whole = LocalStudent(_apply([("memory_solution", '{"memory_gb": mem,', '{"memory_gb": float(round(mem)),')]))
    _, failed = local_scores(whole, SEEDS[0])
    assert "rounded to a whole GB" in failed["memory_34b_inference"]
    # a training recommendation of FP4 is named as such, in any case
    fp4 = LocalStudent(_apply([("advisor_solution", '"training": ("bf16", "fp8")',
                                '"training": ("FP4", "FP4")')]))
    _, failed = local_scores(fp4, SEEDS[0])
    assert "FP4 is not a training format" in failed["advisor_training_no_fp4"]
    assert_hidden_rule(failed)


def assert_hidden_rule(failed: dict[str, str]) -> None:
    """Every failed hidden check shows its one fixed text: the hints are the public checks' job."""
    hidden = {c.name: c.hidden_failure for c in LAB.exercises.checks if c.hidden and c.name in failed}
    assert {n: failed[n] for n in hidden} == hidden


def test_hidden_messages_show_no_hidden_values():
    """A wrong memory answer's hidden feedback is the check's fixed text: no hidden size, no GB, no hint;
    the public check on its own input names the cause (GiB)."""
    gib = LocalStudent(LAB.mistakes["memory_gib"][1](demo.solution_sources("lab321")))
    _, failed = local_scores(gib, SEEDS[0])
    assert "memory_inference_values" in failed and "GiB" in failed["memory_34b_inference"]
    assert_hidden_rule(failed)
    assert not any(ch.isdigit() for ch in failed["memory_inference_values"]), failed["memory_inference_values"]


# ---------------------------------------------------------------------------------------------
# The exercise contract
# ---------------------------------------------------------------------------------------------

def test_grade_cells_follow_the_contract():
    import nbformat

    from labs.lab321 import LAB
    CONTRACT, CHECKS = LAB.exercises.contract, LAB.exercises.checks
    from grader.grading.contract import check_notebook, notebook_grade_cells
    from helpers import SOURCE

    nb = nbformat.read(SOURCE, as_version=4)
    check_notebook(nb, "lab321")
    cells = dict(notebook_grade_cells(nb))
    assert set(cells) == set(CONTRACT) == set(FULL)
    for ex_id, points in cells.items():  # the points are the sum of the registered checks' points
        assert points == sum(c.points for c in CHECKS if c.exercise == ex_id) == FULL[ex_id]


@pytest.mark.parametrize("tamper, words", [
    (lambda meta: meta.update(points=10), "worth 10 points but its checks give"),
    (lambda meta: meta.update(grade_id="bonus"), "'bonus' has no registered checks"),
])
def test_contract_refuses_points_or_ids_that_differ(tamper, words):
    import nbformat

    from grader.grading.contract import ContractError, check_notebook
    from helpers import SOURCE

    nb = nbformat.read(SOURCE, as_version=4)
    grade = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    tamper(grade.metadata["nbgrader"])
    with pytest.raises(ContractError, match=words):
        check_notebook(nb, "lab321")


def test_generate_assignment_and_autograde_refuse_a_broken_contract(tmp_path):
    import os
    import sqlite3
    import subprocess
    import sys

    import nbformat

    from grader.grading.contract import CheckGradebookContract, ContractError

    demo.copy_course(tmp_path)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    src = tmp_path / "source" / "lab321" / "lab321.ipynb"
    good = src.read_text()
    nb = nbformat.reads(good, as_version=4)
    next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "memory").metadata["nbgrader"]["points"] = 10
    nbformat.write(nb, src)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lab321", "--force"], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "worth 10 points" in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    src.write_text(good)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lab321", "--force"], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    db = tmp_path / "gradebook.db"
    resources = {"nbgrader": {"db_url": f"sqlite:///{db}", "assignment": "lab321", "notebook": "lab321",
                              "student": "alice"}}
    CheckGradebookContract().preprocess(nb, resources)  # the fresh gradebook agrees
    con = sqlite3.connect(db)
    con.execute("update grade_cells set max_score = 10 where id in (select id from base_cell where name = 'memory')")
    con.commit()
    con.close()
    with pytest.raises(ContractError, match="worth 10 points"):
        CheckGradebookContract().preprocess(nb, resources)


# ---------------------------------------------------------------------------------------------
# Exercise 1: the quantizer the student writes
# ---------------------------------------------------------------------------------------------

def test_model_e4m3_encode_matches_ml_dtypes_on_every_fp16_pattern():
    import ml_dtypes
    import numpy as np
    import torch

    student = LocalStudent()
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    got = np.asarray(student.ns["e4m3_encode"](torch.from_numpy(x)).numpy())
    finite = np.isfinite(x)
    want = np.clip(x[finite], -448, 448).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)  # clamp: ml_dtypes gives NaN
    assert np.array_equal(got[finite], want)
    assert set(got[np.isnan(x)].tolist()) <= {0x7F, 0xFF}
    assert got[x == np.inf].tolist() == [0x7E] and got[x == -np.inf].tolist() == [0xFE]


QUANTIZER_MISTAKES = {  # (edit of the model solution) -> the checks it must fail, and only those
    "ties away from zero": (("n = torch.round(torch.ldexp(a, 3 - binade))", "n = torch.floor(torch.ldexp(a, 3 - binade) + 0.5)"),
                            {"e4m3_public", "e4m3_rounding"}),
    "no saturation": (('.clamp(max=448.0)    # +-inf', '.clamp(max=1e30)    # +-inf'), {"e4m3_public", "e4m3_special"}),
    "no sign on zero": (("sign = torch.signbit(x).to(torch.int32) << 7", "sign = (x < 0).to(torch.int32) << 7"),
                        {"e4m3_public", "e4m3_special"}),
    "encode-direction tensor scale": (('"tensor_scale": float(t)}', '"tensor_scale": float(1 / t)}'),
                                      {"nvfp4_public", "nvfp4_scales", "nvfp4_blocks"}),
    "no block-scale clamp": (('.clamp(2.0**-6, 448.0), "fp8_e4m3")', '.clamp(0, 448.0), "fp8_e4m3")'),
                             {"nvfp4_public", "nvfp4_scales", "nvfp4_blocks"}),
}


@pytest.mark.parametrize("mistake", sorted(QUANTIZER_MISTAKES))
def test_quantizer_mistakes_cost_their_properties_only(mistake):
    (old, new), fails = QUANTIZER_MISTAKES[mistake]
    student = LocalStudent(_solution_with("quantizer_solution", old, new))
    for seed in SEEDS[:3]:
        scores, failed = local_scores(student, seed)
        assert set(failed) == fails, (mistake, seed, failed)
    public = [m for name, m in failed.items() if name.endswith("_public")]
    hidden = [m for name, m in failed.items() if not name.endswith("_public")]
    assert all("you gave" in m.lower() for m in public), public  # the public input's first differing value
    assert hidden and all("you gave" not in m.lower() for m in hidden), hidden
    assert_hidden_rule(failed)


def test_public_quantizer_message_names_the_element():
    student = LocalStudent(_solution_with("quantizer_solution", "n = torch.round(torch.ldexp(a, 3 - binade))",
                                          "n = torch.floor(torch.ldexp(a, 3 - binade) + 0.5)"))
    _, failed = local_scores(student, SEEDS[0])
    # 1.0625 is halfway between 1.0 (0x38) and 1.125 (0x39): even is 0x38, away-from-zero gives 0x39
    assert "element 3, input 1.0625: you gave 0x39, expected 0x38" in failed["e4m3_public"], failed["e4m3_public"]
    assert "e4m3_rounding" in failed
    assert_hidden_rule(failed)


def test_snr_helper_does_not_give_exercise_2_away():
    student = LocalStudent(_solution_with("snr_solution", "def calculate_snr(original, quantized):",
                                          "calculate_snr = snr_db\n\n\ndef _unused(original, quantized):"))
    scores, failed = local_scores(student, SEEDS[0])
    assert scores["snr"] <= FULL["snr"] / 3 and "snr_known_value" in failed, (scores, failed)  # was 6 / 6


# ---------------------------------------------------------------------------------------------
# Honest memory rules: mixed-precision Adam for training, weights x 1.2 and a KV-cache formula
# ---------------------------------------------------------------------------------------------

def test_old_training_rule_weights_x4_is_named_and_costs_the_training_values():
    student = LocalStudent(LAB.mistakes["memory_training_x4"][1](demo.solution_sources("lab321")))
    for seed in SEEDS[:3]:
        _, failed = local_scores(student, seed)
        assert "weights x 4" in failed["memory_7b_training"] and "memory_training_values" in failed
        assert "FP32 master weights" in failed["memory_7b_training"]
        assert_hidden_rule(failed)
        assert not any(k.startswith(("advisor", "snr", "e4m3", "nvfp4")) for k in failed), failed


def test_advisor_with_weights_x4_is_told_why_its_rung_is_wrong():
    """An advisor that sizes training as weights x 4 picks bf16 for 8.2B (65.6 GB instead of 131.2): the
    feedback names the rule, not the numbers."""
    sources = _apply([("advisor_solution", "return weights + model_params_billions * (2 + 4 + 8)",
                       "return weights * 4")])
    _, failed = local_scores(LocalStudent(sources), SEEDS[0])
    assert "weights x 4" in failed["advisor_training_no_fp4"] and "advisor_training" in failed
    assert "131.2" not in failed["advisor_training_no_fp4"] and "65.6" not in failed["advisor_training_no_fp4"]
    assert_hidden_rule(failed)


def test_training_ladder_feedback_for_fp32_and_fp4():
    _, failed = local_scores(LocalStudent(LAB.mistakes["advisor_fp32_training"][1](demo.solution_sources("lab321"))), SEEDS[0])
    assert set(failed) == {"advisor_training", "advisor_training_no_fp4"}  # the public sibling catches it too
    assert "FP32 is not ranked above BF16" in failed["advisor_training_no_fp4"]
    _, failed = local_scores(LocalStudent(LAB.mistakes["advisor_fp4_training"][1](demo.solution_sources("lab321"))), SEEDS[0])
    assert "FP4 is not a training format" in failed["advisor_training_no_fp4"] and "advisor_training" in failed
    assert_hidden_rule(failed)


def _printed(cell_ids: tuple[str, ...]) -> tuple[str, dict]:
    import contextlib
    import io

    LocalStudent._baseline()
    ns = dict(LocalStudent._base)
    cells = {gid: src for gid, src in __import__("helpers").solution_cells() if gid}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for gid in cell_ids:
            exec(compile(cells[gid], f"<cell {gid}>", "exec"), ns)
    return out.getvalue(), ns


def test_notebook_prints_the_training_rule_and_a_kv_cache_example():
    text, ns = _printed(("memory_rules",))
    # by hand: bf16 2+2+4+8 = 16 B/param, 7B -> 112 GB, 8.2B -> 131.2 GB, 128/16 = 8.00B; fp8 1+2+4+8 = 15,
    # 8.2B -> 123.0 GB, 128/15 = 8.53B; fp32 4+4+0+8 = 16
    assert "BF16  training: 2 + 2 + 4 + 8 = 16 B/param; 7B model: 112 GB, 8.2B: 131.2 GB" in text
    assert "FP8   training: 1 + 2 + 4 + 8 = 15 B/param; 7B model: 105 GB, 8.2B: 123.0 GB" in text
    assert "FP32  training: 4 + 4 + 0 + 8 = 16 B/param" in text
    assert "in 128 GB: 8.00B" in text and "in 128 GB: 8.53B" in text
    assert "BF16 training of 7B takes 56 GB: half the real 112 GB" in text  # 7 * 2 * 4 = 56
    # KV cache by hand: 2 * 80 * 8 * 128 * 8192 * 1 * 2 bytes = 2.68e9 B; x 4 tokens x 4 batch = 42.95e9 B;
    # 70B FP8 weights 70 GB, 20% headroom 14 GB
    assert "70B in FP8: weights 70.0 GB; the 20% headroom of rule 2 is 14.0 GB" in text
    assert "8192 x 1 x 2 bytes = 2.68 GB (4% of the weights): within the headroom" in text
    assert "32768 x 4 x 2 bytes = 42.95 GB (61% of the weights): the x 1.2 rule is not enough here" in text
    assert ns["kv_cache_gb"](80, 8, 128, 8192) == pytest.approx(2 * 80 * 8 * 128 * 8192 * 2 / 1e9)


def test_notebook_states_the_memory_rules():
    from helpers import SOURCE

    text = SOURCE.read_text()
    for phrase in ("2 + 2 + 12 = 16 bytes", "4 + 4 + 8 = 16 bytes", "1 + 2 + 12 = **15 bytes**", "Left out: activations",
                   "unified memory", "training `bf16 -> fp8`", "FP32 is not ranked above BF16", "Never FP4 for training",
                   "2 × layers × kv_heads × head_dim × seq_len × batch × bytes_per_value"):
        assert phrase in text, phrase
    assert "needs the weights **× 4**" not in text and '"training": 4.0' not in text


def test_exercise_1_prints_training_answers():
    text, _ = _printed(("memory_solution",))
    # 8.2B training: fp32 8.2*16 = 131.2 (no), bf16 131.2 (no), fp8 8.2*15 = 123.0 (yes), fp4 8.2*14.5 = 118.9
    assert "  bf16    131.2 GB  fits: False" in text and "  fp8     123.0 GB  fits: True" in text
    assert "  fp4     118.9 GB  fits: True" in text
    assert text.count("recommendation: bf16") == 1 and text.count("recommendation: fp8") == 1


# ---------------------------------------------------------------------------------------------
# Self-check anywhere: every hidden check has a public sibling; points per exercise unchanged
# ---------------------------------------------------------------------------------------------

def test_every_exercise_keeps_its_points_and_has_public_checks():
    from labs.lab321 import LAB as LAB321; CONTRACT = LAB321.exercises.contract  # noqa: E702
    assert FULL == {"memory": 6.0, "snr": 6.0, "quantizer": 6.0, "weights": 4.0, "advisor": 6.0}
    for ex in CONTRACT.values():
        assert 0 < ex.public_points < ex.points, ex.id


def test_every_demo_mistake_fails_a_public_check():
    """No mistake class passes the self-check silently."""
    from labs.lab321 import LAB
    CHECKS = LAB.exercises.checks
    public = {c.name for c in CHECKS if not c.hidden}
    for sid, (_, fn) in LAB.mistakes.items():
        _, failed = local_scores(LocalStudent(fn(demo.solution_sources("lab321"))), SEEDS[0])
        assert set(failed) & public, sid


def test_public_fp4_training_check_names_the_mistake_and_the_values_are_hand_checked():
    # a training ladder that ends in fp4: memory priority for 3B gives fp4 (3 * 14.5 = 43.5 GB) instead of
    # fp8 (3 * 15 = 45 GB); the public message says why
    _, failed = local_scores(LocalStudent(LAB.mistakes["advisor_fp4_training"][1](demo.solution_sources("lab321"))), SEEDS[0])
    assert "FP4 is not a training format" in failed["advisor_training_no_fp4"]
    from labs.lab321 import answers as R
    assert R.recommend_precision(3, 128, "training", "memory")["memory_gb"] == pytest.approx(45.0)
    assert R.recommend_precision(8.4, 128, "training", "quality")["precision"] == "fp8"  # bf16 134.4 > 128, fp8 126
    assert R.recommend_precision(10, 16, "inference", "quality")["precision"] == "fp8"  # bf16 24 > 16, fp8 12


# ---------------------------------------------------------------------------------------------
# Exercises numbered in the order they appear (issue 18)
# ---------------------------------------------------------------------------------------------

def test_exercises_are_numbered_in_the_order_the_notebook_shows_them():
    import re

    import nbformat

    from helpers import SOURCE

    nb = nbformat.read(SOURCE, as_version=4)
    shown = []  # exercise ids in the order their grade cells appear
    headings = []  # "Exercise N (graded: `id`)" headings, in order
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if c.metadata.get("nbgrader", {}).get("grade") and gid in LAB.exercises.contract:
            shown.append(gid)
        if c.cell_type == "markdown":
            headings += re.findall(r"^## (Exercise (\d+)|Challenge) \(graded: `(\w+)`\)", c.source, re.M)
    contract = LAB.exercises.contract
    assert sorted(contract, key=lambda k: contract[k].order) == shown  # `order` follows the notebook
    assert list(LAB.exercises.by_exercise()) == shown  # so do the demo table and the reports
    numbered = [(int(n), ex) for _, n, ex in headings if n]
    assert [n for n, _ in numbered] == list(range(1, len(numbered) + 1)), numbered
    assert [ex for _, ex, in [(n, e) for n, e in numbered]] + ["advisor"] == shown
    for n, ex in numbered:  # the checks' titles carry the notebook's numbers
        assert contract[ex].title.startswith(f"Exercise {n}:"), (ex, contract[ex].title)
    assert not re.search(r"Exercise [5-9]", SOURCE.with_suffix(".py").read_text())


def test_tensor_scale_in_two_divisions_fails_a_public_check_that_names_it():
    """max|x| / 448 / 6 rounds twice in float32: on the public 1x32 tensor (max|x| = 0.3) it differs from
    max|x| / (448 * 6), and the public message says so; the hidden checks are what they were."""
    student = LocalStudent(_solution_with(
        "quantizer_solution", "t = torch.div(torch.nan_to_num(block_amax, nan=0.0).amax(), const(448.0 * 6))",
        "t = torch.div(torch.div(torch.nan_to_num(block_amax, nan=0.0).amax(), const(448.0)), const(6.0))"))
    for seed in SEEDS[:3]:
        scores, failed = local_scores(student, seed)
        assert "nvfp4_public" in failed and set(failed) <= {"nvfp4_public", "nvfp4_scales", "nvfp4_blocks"}, failed
        msg = failed["nvfp4_public"]
        assert "1x32 tensor" in msg and "max|x| / 448 / 6" in msg and "Divide once" in msg, msg
        assert_hidden_rule(failed)


# ---------------------------------------------------------------------------------------------
# Points for nothing (issue 18): content-free constant answers score 0 on every exercise
# ---------------------------------------------------------------------------------------------

EMPTY = {  # every solution cell defines its names and computes nothing
    "quantizer_solution": "def e4m3_encode(x):\n    return None\n\n\ndef nvfp4_encode(x):\n    return None\n",
    "memory_solution": "def analyze_model_memory(params_billions, memory_budget_gb=128, task='inference'):\n    return None\n",
    "snr_solution": "def calculate_snr(original, quantized):\n    return None\n\n\ndef snr_by_format(weights):\n    return None\n",
    "snr_answer": "BEST_FORMAT_FOR_GAUSSIAN = None\n",
    "weights_solution": "def excess_kurtosis(w):\n    return None\n\n\ndef int8_per_channel(w):\n    return None\n",
    "advisor_solution": ("def recommend_precision(model_params_billions, memory_budget_gb=128, task='inference', "
                         "quality_priority='balanced'):\n    return None\n"),
}
CONSTANT = {
    "constant_none": {
        "quantizer_solution": (
            "def e4m3_encode(x):\n    return torch.zeros(torch.as_tensor(x).shape, dtype=torch.uint8)\n\n\n"
            "def nvfp4_encode(x):\n    x = torch.as_tensor(x)\n"
            "    return {'codes': torch.zeros(x.shape, dtype=torch.uint8), "
            "'scale_codes': torch.zeros((*x.shape[:-1], x.shape[-1] // 16), dtype=torch.uint8), 'tensor_scale': 1.0}\n"),
        "memory_solution": (
            "def analyze_model_memory(params_billions, memory_budget_gb=128, task='inference'):\n"
            "    if params_billions < 0 or memory_budget_gb <= 0:\n        raise ValueError('bad input')\n"
            "    table = {p: {'memory_gb': 1e9, 'fits': False} for p in ('fp32', 'fp16', 'bf16', 'fp8', 'int8', 'int4', 'fp4')}\n"
            "    return {'precisions': table, 'recommendation': None}\n"),
        "snr_solution": ("def calculate_snr(original, quantized):\n    return float('inf')\n\n\n"
                         "def snr_by_format(weights):\n    return {'int8': 0.0, 'int4': 0.0, 'fp8': 0.0, 'fp4': 0.0}\n"),
        "snr_answer": "BEST_FORMAT_FOR_GAUSSIAN = 'int8'\n",
        "weights_solution": ("def excess_kurtosis(w):\n    return 0.0\n\n\n"
                             "def int8_per_channel(w):\n    return torch.zeros_like(torch.as_tensor(w))\n"),
        "advisor_solution": (
            "def recommend_precision(model_params_billions, memory_budget_gb=128, task='inference', quality_priority='balanced'):\n"
            "    return {'precision': 'fp8', 'memory_gb': 1e9, 'fits': False, 'reasoning': 'It depends on the model.'}\n"),
    },
    "constant_all_fit": {
        "memory_solution": (
            "def analyze_model_memory(params_billions, memory_budget_gb=128, task='inference'):\n"
            "    table = {p: {'memory_gb': 0.0, 'fits': True} for p in ('fp32', 'fp16', 'bf16', 'fp8', 'int8', 'int4', 'fp4')}\n"
            "    return {'precisions': table, 'recommendation': 'bf16'}\n"),
        "snr_solution": ("def calculate_snr(original, quantized):\n    return 0.0\n\n\n"
                         "def snr_by_format(weights):\n    return {'int8': 40.0, 'int4': 15.0, 'fp8': 31.0, 'fp4': 20.0}\n"),
        "snr_answer": "BEST_FORMAT_FOR_GAUSSIAN = 'int8'\n",
        "advisor_solution": (
            "def recommend_precision(model_params_billions, memory_budget_gb=128, task='inference', quality_priority='balanced'):\n"
            "    return {'precision': 'bf16', 'memory_gb': 0.0, 'fits': True, 'reasoning': 'BF16 keeps the quality.'}\n"),
    },
    "stubs_and_best_format": {"snr_answer": "BEST_FORMAT_FOR_GAUSSIAN = 'int8'\n"},
}


def test_trivial_and_constant_answers_score_zero_on_every_exercise():
    assert set(EMPTY) == set(demo.solution_sources("lab321"))  # every solution cell of the model solution
    for name, answers in {"empty": {}, **CONSTANT}.items():
        student = LocalStudent({**EMPTY, **answers})
        for seed in SEEDS[:2]:
            scores, failed = local_scores(student, seed)
            assert scores == {ex: 0.0 for ex in FULL}, (name, seed, {c: m for c, m in failed.items()})
            assert_hidden_rule(failed)


def test_consistency_checks_say_why_a_constant_earns_nothing():
    student = LocalStudent({**EMPTY, **CONSTANT["constant_none"]})
    _, failed = local_scores(student, SEEDS[0])
    assert "earn credit only together with memory_gb computed from the inputs" in failed["memory_fits_at_budget_example"]
    assert "earn credit only together with memory_gb computed" in failed["memory_bad_input"]
    assert "must measure the noise" in failed["snr_identical"]
    assert "measures its input" in failed["best_format_is_a_key"]
    assert "memory_gb is off" in failed["advisor_reasoning"]


def test_demo_mistakes_keep_their_scores():
    """The demo table (docs/benchmarks.md): each mistake loses only its own checks."""
    want = {"snr_20log10": 23.5, "snr_amplitude": 23.5, "snr_swapped": 24.5, "memory_gib": 25,
            "memory_no_headroom": 26, "memory_training_x4": 27, "advisor_fp4_training": 27,
            "advisor_fp32_training": 27, "advisor_ignores_budget": 27, "weights_per_tensor": 25.5}
    assert set(want) == set(LAB.mistakes)
    for sid, total in want.items():
        scores, _ = local_scores(LocalStudent(LAB.mistakes[sid][1](demo.solution_sources("lab321"))), SEEDS[0])
        assert sum(scores.values()) == total, (sid, scores)
