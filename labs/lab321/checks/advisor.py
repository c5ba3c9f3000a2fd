"""Exercise ``advisor``: recommend_precision.

Precision names in any case; memory_gb within 0.1% or 0.05 GB; fp4 with or without its
scale overhead (the notebook says both are accepted); ``fits`` against the student's own
memory_gb. Every hidden check starts with fixed anchor cases that expose its mistake class,
so what a mistake costs does not depend on the hidden seed.
"""

from __future__ import annotations

from .. import answers
from ..answers import ACCEPTED_BYTES, LADDERS, PRIORITY_START

from . import exercise, Fail, as_bool, as_dict, as_name, as_number, check, gb_close, lower_keys, shown
from .memory import memory_hint

exercise("advisor", "Challenge: precision advisor", order=9)
KEYS = ("precision", "memory_gb", "fits", "reasoning")


def _variants(size, budget, task, prio):
    """The reference answer under each accepted way of counting fp4's bytes."""
    return [answers.recommend_precision(size, budget, task, prio, {"fp4": b}) for b in ACCEPTED_BYTES["fp4"]]


def _ask(student, size, budget, task, prio, label, fields=("precision", "fits", "memory_gb")):
    got = lower_keys(as_dict(student.call("recommend_precision", size, memory_budget_gb=budget, task=task,
                                          quality_priority=prio), f"recommend_precision for {label}"))
    as_dict(got, f"recommend_precision for {label}", KEYS)
    wants = _variants(size, budget, task, prio)
    if "precision" in fields:
        p = as_name(got["precision"], f"the precision for {label}")
        if p not in {w["precision"] for w in wants}:
            raise Fail(f"recommend_precision for {label}: the precision is not the one the ladder rule gives."
                       f"{_precision_hint(p, task, prio)}{_x4_hint(got, size, p, task)}")
        wants = [w for w in wants if w["precision"] == p]
    if "memory_gb" in fields:
        g = as_number(got["memory_gb"], f"memory_gb for {label}")
        if not any(gb_close(g, w["memory_gb"]) for w in wants):
            raise Fail(f"recommend_precision for {label}: memory_gb is off by more than 0.1% (or 0.05 GB)."
                       f"{memory_hint(g, size, wants[0]['precision'], task)}")
    if "fits" in fields:
        fits = as_bool(got["fits"], f"'fits' for {label}")
        own = as_number(got["memory_gb"], f"memory_gb for {label}")
        if fits != (own <= budget) and fits not in {w["fits"] for w in wants}:
            raise Fail(f"recommend_precision for {label}: 'fits' must be True exactly when memory_gb <= the budget.")
    return got


def _x4_hint(got, size, p, task):
    """A wrong rung often comes from the old training rule (weights x 4): say so when memory_gb shows it."""
    try:
        hint = memory_hint(as_number(got["memory_gb"], "memory_gb"), size, p, task)
    except Exception:  # noqa: BLE001 - no usable memory_gb or an unknown precision: no hint
        return ""
    return hint if "weights x 4" in hint else ""


def _precision_hint(p, task, prio):
    ladder = LADDERS[task]
    if task == "training" and p in ("fp4", "int4", "nvfp4", "mxfp4"):
        return " FP4 is not a training format."
    if task == "training" and p == "fp32":
        return (" FP32 is not ranked above BF16 for training: with Adam both take 16 B/param and BF16 is faster"
                f" (ladder {' -> '.join(ladder)}).")
    if p not in ladder:
        return f" {shown(p)} is not on the {task} ladder ({' -> '.join(ladder)})."
    start = PRIORITY_START[task][prio]
    if ladder.index(p) < start:
        return f" Priority {prio!r} starts lower on the ladder than {shown(p)}."
    return " Check that you compare with the budget you are given and take the first rung from the start that fits."


def _sizes(rng, n, lo=1, hi=150):
    return [round(float(rng.uniform(lo, hi)), 1) for _ in range(n)]


@check("advisor", "advisor_70b", 0.5, "a 70B model, inference, balanced, 128 GB", hidden=False)
def public_70b(student, rng):
    _ask(student, 70, 128, "inference", "balanced", "a 70B model (inference, balanced)")


@check("advisor", "advisor_quality_13b", 0.5, "a 13B model, inference, quality priority", hidden=False)
def public_quality(student, rng):
    _ask(student, 13, 128, "inference", "quality", "a 13B model (inference, quality)")


@check("advisor", "advisor_quality", 0.5, "inference with quality priority")
def quality(student, rng):
    for s in [7.0, 70.0, 150.0] + _sizes(rng, 3):
        _ask(student, s, 128, "inference", "quality", "inference with quality priority")


@check("advisor", "advisor_memory_priority_13b", 0.5, "a 13B model, inference, memory priority", hidden=False)
def public_memory_priority(student, rng):
    _ask(student, 13, 128, "inference", "memory", "a 13B model (inference, memory)")


@check("advisor", "advisor_memory_priority", 0.5, "memory priority")
def memory_priority(student, rng):
    for s in [7.0] + _sizes(rng, 3, 1, 60):
        _ask(student, s, 128, "inference", "memory", "inference with memory priority")


@check("advisor", "advisor_training_no_fp4", 0.5,
       "training: 2B and 8.4B quality, 3B memory priority, 12B balanced (FP4 is not recommended for training)",
       hidden=False)
def public_training(student, rng):
    for s, prio in ((2.0, "quality"), (8.4, "quality"), (3.0, "memory"), (12.0, "balanced")):
        _ask(student, s, 128, "training", prio, f"a {s:g}B model (training, {prio})")


@check("advisor", "advisor_training", 0.5, "training, all priorities")
def training(student, rng):
    # 5B: bf16 80 GB fits; 8.2B: bf16 131.2 GB does not, fp8 123 GB does; 20B: nothing fits.
    anchors = [(5.0, "quality"), (5.0, "balanced"), (5.0, "memory"), (8.2, "quality"), (20.0, "balanced")]
    for s, prio in anchors + list(zip(_sizes(rng, 3, 1, 30), ("quality", "balanced", "memory"))):
        _ask(student, s, 128, "training", prio, f"training with {prio} priority")


@check("advisor", "advisor_nothing_fits_300b", 0.5, "a 300B model, inference, balanced, 128 GB", hidden=False)
def public_nothing_fits(student, rng):
    _ask(student, 300, 128, "inference", "balanced", "a 300B model (inference, balanced)")


@check("advisor", "advisor_nothing_fits", 0.5, "a model too large for every rung")
def nothing_fits(student, rng):
    for s in [500.0, round(float(rng.uniform(300, 900)), 1)]:
        _ask(student, s, 128, "inference", "balanced", "a model too large for the budget")


@check("advisor", "advisor_custom_budget_16gb", 0.5, "a 10B model, inference, quality, 16 GB", hidden=False)
def public_custom_budget(student, rng):
    _ask(student, 10, 16, "inference", "quality", "a 10B model with a 16 GB budget (inference, quality)")


@check("advisor", "advisor_custom_budget", 0.5, "budgets other than 128 GB")
def custom_budget(student, rng):
    anchors = [(30.0, 48.0), (20.0, 24.0)]  # the budget decides: 128 GB would give another answer
    for s, b in anchors + list(zip(_sizes(rng, 3, 5, 60), (24.0, 48.0, 80.0))):
        _ask(student, s, b, "inference", "quality", "a custom memory budget")


@check("advisor", "advisor_reasoning", 0.5, "the reasoning text", hidden=False)
def reasoning(student, rng):
    # a sentence earns credit only together with the answer it explains (precision, memory_gb and fits right)
    got = _ask(student, 13, 128, "inference", "balanced", "a 13B model (inference, balanced)")
    if not isinstance(got["reasoning"], str) or len(got["reasoning"].strip()) < 10:
        raise Fail("'reasoning' must be a sentence or two explaining the choice.")
