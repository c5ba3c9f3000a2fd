"""Exercise ``advisor``: recommend_precision."""

from __future__ import annotations

import reference

from . import EXERCISES, Fail, as_dict, as_number, check, close, ratio_hint

EXERCISES["advisor"] = "Challenge: precision advisor"
KEYS = ("precision", "memory_gb", "fits", "reasoning")


def _ask(student, size, budget, task, prio, label, fields=("precision", "fits", "memory_gb")):
    got = as_dict(student.call("recommend_precision", size, memory_budget_gb=budget, task=task,
                               quality_priority=prio), f"recommend_precision for {label}", KEYS)
    want = reference.recommend_precision(size, budget, task, prio)
    if "precision" in fields and got["precision"] != want["precision"]:
        hint = " FP4 is not a training format." if task == "training" and got["precision"] == "fp4" else ""
        raise Fail(f"recommend_precision for {label}: the precision is not the one the ladder rule gives.{hint}")
    if "fits" in fields and got["fits"] is not want["fits"]:
        raise Fail(f"recommend_precision for {label}: 'fits' must be True exactly when memory_gb <= the budget.")
    if "memory_gb" in fields:
        g = as_number(got["memory_gb"], f"memory_gb for {label}")
        if not close(g, want["memory_gb"], 1e-3):
            raise Fail(f"recommend_precision for {label}: memory_gb is off by more than 0.1%.{ratio_hint(g, want['memory_gb'])}")
    return got


def _sizes(rng, n, lo=1, hi=150):
    return [round(float(rng.uniform(lo, hi)), 1) for _ in range(n)]


@check("advisor", "advisor_70b", 1, "a 70B model, inference, balanced, 128 GB", hidden=False)
def public_70b(student, rng):
    _ask(student, 70, 128, "inference", "balanced", "a 70B model (inference, balanced)")


@check("advisor", "advisor_quality", 1, "inference with quality priority")
def quality(student, rng):
    for s in _sizes(rng, 4):
        _ask(student, s, 128, "inference", "quality", "inference with quality priority")


@check("advisor", "advisor_memory_priority", 1, "memory priority")
def memory_priority(student, rng):
    for s in _sizes(rng, 3, 1, 60):
        _ask(student, s, 128, "inference", "memory", "inference with memory priority")


@check("advisor", "advisor_training", 1, "training, all priorities")
def training(student, rng):
    for s, prio in zip(_sizes(rng, 3, 1, 30), ("quality", "balanced", "memory")):
        _ask(student, s, 128, "training", prio, f"training with {prio} priority")


@check("advisor", "advisor_nothing_fits", 1, "a model too large for every rung")
def nothing_fits(student, rng):
    s = round(float(rng.uniform(300, 900)), 1)
    _ask(student, s, 128, "inference", "balanced", "a model too large for the budget")


@check("advisor", "advisor_custom_budget", 0.5, "budgets other than 128 GB")
def custom_budget(student, rng):
    for s, b in zip(_sizes(rng, 3, 5, 60), (24.0, 48.0, 80.0)):
        _ask(student, s, b, "inference", "quality", "a custom memory budget")


@check("advisor", "advisor_reasoning", 0.5, "the reasoning text", hidden=False)
def reasoning(student, rng):
    got = _ask(student, 13, 128, "inference", "balanced", "a 13B model", fields=())
    if not isinstance(got["reasoning"], str) or len(got["reasoning"].strip()) < 10:
        raise Fail("'reasoning' must be a sentence or two explaining the choice.")
