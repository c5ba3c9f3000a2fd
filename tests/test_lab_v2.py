"""Lab v2 (issue 12): fair grading, the exercise contract, the quantizer exercise, memory rules.

The checks are exercised in this process through helpers.LocalStudent (same plain-data
encoding as the sandbox, no sandbox), so many seeds and answer variants stay fast.
"""

from __future__ import annotations

import math

import pytest

from grader import demo
from helpers import FULL, LocalStudent, local_scores

SEEDS = ["lab321-2026-autumn-6c1f9e", "term-a", "term-b", "x", "0"]


def _solution_with(cell: str, old: str, new: str) -> dict[str, str]:
    src = demo.solution_sources()[cell]
    assert old in src, f"{old!r} not in {cell}"
    return {cell: src.replace(old, new)}


@pytest.fixture(scope="module")
def mistake_costs():
    """points lost and failed checks per demo mistake, per seed."""
    out = {}
    for sid, (_, fn) in demo.MISTAKES.items():
        student = LocalStudent(fn(demo.solution_sources()))
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
    sources = demo.solution_sources()
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
    sources = _apply([("memory_solution", "mem = calculate_model_memory(params_billions, p) * factors[task]",
                       "mem = params_billions * (0.5625 if p == 'fp4' else BYTES_PER_PARAM[p]) * factors[task]"),
                      ("advisor_solution", "mem = calculate_model_memory(model_params_billions, p) * factor",
                       "mem = model_params_billions * (0.5625 if p == 'fp4' else BYTES_PER_PARAM[p]) * factor")])
    for seed in SEEDS[:3]:
        assert local_scores(LocalStudent(sources), seed)[1] == {}


def test_feedback_names_units_and_whole_gb_rounding():
    gib = LocalStudent(demo.MISTAKES["memory_gib"][1](demo.solution_sources()))
    _, failed = local_scores(gib, SEEDS[0])
    assert "GiB" in failed["memory_34b_inference"]
    whole = LocalStudent(_apply([("memory_solution", '{"memory_gb": mem,', '{"memory_gb": float(round(mem)),')]))
    _, failed = local_scores(whole, SEEDS[0])
    assert "rounded to a whole GB" in failed["memory_34b_inference"]
    # a training recommendation of FP4 is named as such, in any case
    fp4 = LocalStudent(_apply([("advisor_solution", '"training": ("fp32", "bf16", "fp8")',
                                '"training": ("FP4", "FP4", "FP4")')]))
    _, failed = local_scores(fp4, SEEDS[0])
    assert "FP4 is not a training format" in failed["advisor_training"]


def test_hidden_messages_show_no_hidden_values():
    """A wrong memory answer's hidden feedback names the cause, not the hidden sizes or expected GB."""
    gib = LocalStudent(demo.MISTAKES["memory_gib"][1](demo.solution_sources()))
    _, failed = local_scores(gib, SEEDS[0])
    msg = failed["memory_inference_values"]
    numbers = [tok for tok in msg.replace("(", " ").replace(")", " ").split() if tok[:1].isdigit()]
    assert numbers and all(tok.rstrip(".,:%") in {"0.1", "0.05", "7", "2**30", "1e9"} for tok in numbers), numbers
