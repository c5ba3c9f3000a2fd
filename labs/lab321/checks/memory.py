"""Exercise ``memory``: analyze_model_memory (Exercise 2 as a function).

Fair to answers that follow the notebook's text: precision names and dict keys in any case,
memory_gb rounded to 1 or 2 decimals (within 0.1% or 0.05 GB), fp4/int4 with or without
scale overhead (the notebook says the grader accepts both). Training follows mixed-precision
Adam (labs.lab321.answers: fp32 and bf16 16 B/param, fp8 15, fp4 14.5); the old "weights x 4" rule
is named in the feedback. ``fits`` is checked against the
student's own memory_gb and the budget, and ``recommendation`` against the student's own
``fits``: a wrong memory value costs the value checks only, whatever the hidden seed. That
consistency earns credit only together with memory values computed from the inputs
(:func:`computed`): a constant table ("1e9 GB, nothing fits") is consistent with itself and earns
nothing, nor does input validation in front of one.
"""

from __future__ import annotations

from .. import answers
from ..answers import ACCEPTED_BYTES, ANALYSIS_PRECISIONS, LADDERS

from . import (exercise, Fail, as_bool, as_dict, as_name, as_number, check, gb_close, gb_hint,
               lower_keys, shown)

exercise("memory", "Exercise 2: memory analysis", order=2)


def _table(student, size, budget, task, what):
    got = as_dict(student.call("analyze_model_memory", size, memory_budget_gb=budget, task=task), what,
                  ("precisions", "recommendation"))
    table = lower_keys(as_dict(got["precisions"], f"{what}['precisions']"))
    as_dict(table, f"{what}['precisions']", ANALYSIS_PRECISIONS)
    rows = {p: as_dict(table[p], f"the {p!r} entry of {what}", ("memory_gb", "fits")) for p in ANALYSIS_PRECISIONS}
    return got, rows


def memory_ok(got: float, size: float, p: str, task: str) -> bool:
    """memory_gb within tolerance of the rule, counting scales or not (fp4, int4)."""
    return any(gb_close(got, answers.task_memory(size, p, task, {p: b})) for b in ACCEPTED_BYTES[p])


def memory_hint(got: float, size: float, p: str, task: str) -> str:
    """The likely cause of a wrong memory value, never the value itself."""
    if task == "training" and p.lower() != "fp32" and any(
            gb_close(got, size * b * 4) for b in ACCEPTED_BYTES.get(p.lower(), ())):
        return (" Your value looks like weights x 4 (weights, gradients and two moments all at the chosen "
                "precision): mixed-precision Adam keeps BF16 gradients and FP32 master weights and moments, "
                "bytes(p) + 2 + 12 per parameter (Part 5).")
    return gb_hint(got, answers.task_memory(size, p, task))


def _cases(rng, task, n=3):
    hi = 250 if task == "inference" else 30  # training: around what fits in 16-256 GB at ~16 B/param
    return [(round(float(rng.uniform(1, hi)), 1), float(rng.choice([16, 24, 48, 80, 96, 128, 192, 256])), task)
            for _ in range(n)]


def _check_values(student, cases, label):
    for size, budget, task in cases:
        _, rows = _table(student, size, budget, task, f"analyze_model_memory for {label}")
        for p in ANALYSIS_PRECISIONS:
            g = as_number(rows[p]["memory_gb"], f"memory_gb of {p} for {label}")
            if not memory_ok(g, size, p, task):
                raise Fail(f"memory_gb of {p} for {label} is off by more than 0.1% (or 0.05 GB)."
                           f"{memory_hint(g, size, p, task)} "
                           "Check the bytes per parameter, GB = 1e9 bytes, and the task's rule.")


# memory_gb may differ from the rule (GiB, no headroom, another training rule: the value checks say so), but
# never by more than this factor when it is computed from the inputs at all
COMPUTED_FACTOR = 10.0


def computed(student, rows, size, budget, task, label):
    """Fail unless the table's memory_gb is computed from the inputs: within COMPUTED_FACTOR of the rule,
    FP32 above FP4, and growing with the model size (a second call at twice the size)."""
    why = (f"'fits' and the recommendation earn credit only together with memory_gb computed from the inputs, "
           f"and your memory_gb for {label} is not:")
    own = {p: as_number(rows[p]["memory_gb"], f"memory_gb of {p} for {label}") for p in ANALYSIS_PRECISIONS}
    for p, g in own.items():
        rule = answers.task_memory(size, p, task)
        if not (rule / COMPUTED_FACTOR <= g <= rule * COMPUTED_FACTOR):
            raise Fail(f"{why} memory_gb of {p} is more than {COMPUTED_FACTOR:g}x off the rule. Fix memory_gb first.")
    if not own["fp32"] > own["fp4"]:
        raise Fail(f"{why} FP32 must need more memory than FP4 (4 bytes per parameter against half a byte).")
    _, twice = _table(student, 2 * size, budget, task, f"analyze_model_memory({2 * size:g}, ...)")
    for p in ANALYSIS_PRECISIONS:
        if not as_number(twice[p]["memory_gb"], f"memory_gb of {p} for twice the model size") > own[p]:
            raise Fail(f"{why} twice the parameters must need more memory ({p} does not).")


def _check_fits(rows, size, budget, task, label, student=None):
    if student is not None:
        computed(student, rows, size, budget, task, label)
    for p in ANALYSIS_PRECISIONS:
        fits = as_bool(rows[p]["fits"], f"'fits' of {p} for {label}")
        own = as_number(rows[p]["memory_gb"], f"memory_gb of {p} for {label}")
        exact = [answers.task_memory(size, p, task, {p: b}) <= budget for b in ACCEPTED_BYTES[p]]
        if fits != (own <= budget) and fits not in exact:
            raise Fail(f"'fits' of {p} is wrong for {label} ({task}): a model fits when its memory_gb is "
                       "<= memory_budget_gb. Use the budget you are given, and <= (not <).")


def _check_recommendation(got, rows, task, label, student=None, size=None, budget=None):
    if student is not None:  # the recommendation follows 'fits', which must follow computed memory values
        _check_fits(rows, size, budget, task, label, student)
    rec = as_name(got["recommendation"], f"the recommendation for {label}")
    own_fits = {p: as_bool(rows[p]["fits"], f"'fits' of {p}") for p in ANALYSIS_PRECISIONS}
    want = next((p for p in LADDERS[task] if own_fits[p]), None)
    if rec != want:
        ladder = " -> ".join(LADDERS[task])
        if task == "training" and rec in ("fp4", "int4", "nvfp4", "mxfp4"):
            why = " FP4 is not a training format."
        elif task == "training" and rec == "fp32":
            why = (" FP32 is not ranked above BF16 for training: with Adam both take 16 B/param and BF16 is faster; "
                   f"the training ladder is {ladder}.")
        elif want is None:
            why = " Nothing on the ladder fits (by your own 'fits'): the recommendation is None."
        elif rec is not None and rec not in LADDERS[task]:
            why = f" {shown(rec)} is not on the {task} ladder ({ladder})."
        elif rec is not None and not own_fits.get(rec, False):
            why = " Your recommendation does not fit the budget (by your own 'fits')."
        else:
            why = f" It must be the first rung of {ladder} whose 'fits' is True."
        raise Fail(f"the recommendation for {label} is not the first rung of the {task} ladder that fits.{why}")


@check("memory", "memory_34b_inference", 1, "a 34B model, inference, 128 GB", hidden=False)
def public_34b(student, rng):
    _check_values(student, [(34, 128.0, "inference")], "a 34B model (inference)")
    got, rows = _table(student, 34, 128.0, "inference", "analyze_model_memory(34)")
    _check_fits(rows, 34, 128.0, "inference", "a 34B model (inference)")
    _check_recommendation(got, rows, "inference", "a 34B model (inference)")


@check("memory", "memory_inference_values", 1, "several model sizes, inference")
def inference_values(student, rng):
    _check_values(student, [(70.0, 128.0, "inference"), (7.0, 24.0, "inference")] + _cases(rng, "inference"),
                  "inference of other model sizes")


@check("memory", "memory_7b_training", 0.5, "a 7B model, training, 128 GB", hidden=False)
def public_7b_training(student, rng):
    _check_values(student, [(7, 128.0, "training")], "a 7B model (training)")


@check("memory", "memory_training_values", 0.5, "several model sizes, training")
def training_values(student, rng):
    _check_values(student, [(7.0, 128.0, "training"), (13.0, 80.0, "training")] + _cases(rng, "training"),
                  "training of other model sizes")


# Anchors: a model exactly at the budget (exact in binary arithmetic) and budgets other than 128 GB.
FITS_ANCHORS = [(5.0, 80.0, "training"), (10.0, 40.0, "training"), (30.0, 48.0, "inference")]


@check("memory", "memory_fits_at_budget_example", 0.5, "a 4B model, training, 64 GB: bf16 exactly at the budget",
       hidden=False)
def public_fits(student, rng):
    for size, budget, task in ((4.0, 64.0, "training"), (20.0, 24.0, "inference")):
        _, rows = _table(student, size, budget, task, f"analyze_model_memory({size:g}, memory_budget_gb={budget:g}, "
                                                      f"task={task!r})")
        _check_fits(rows, size, budget, task, f"a {size:g}B model with a {budget:g} GB budget", student)


@check("memory", "memory_fits_budget", 0.5, "custom budgets, including a model exactly at the budget")
def fits_budget(student, rng):
    for size, budget, task in FITS_ANCHORS + _cases(rng, "inference", 2) + _cases(rng, "training", 2):
        label = "a model exactly at the budget" if (size, budget) == FITS_ANCHORS[0][:2] else "custom budgets"
        _, rows = _table(student, size, budget, task, f"analyze_model_memory with {label}")
        _check_fits(rows, size, budget, task, label, student)


# 8.2B training: bf16 131.2 GB does not fit 128, fp8 123 GB does.
REC_ANCHORS = [(150.0, 128.0, "inference"), (900.0, 64.0, "training"), (5.0, 128.0, "training"),
               (7.0, 128.0, "inference"), (8.2, 128.0, "training")]


@check("memory", "memory_recommendation_examples", 0.5,
       "recommendations: 100B inference, 8.2B and 13B training, 128 GB", hidden=False)
def public_recommendation(student, rng):
    for size, task in ((100.0, "inference"), (8.2, "training"), (13.0, "training")):
        got, rows = _table(student, size, 128.0, task, f"analyze_model_memory({size:g}, task={task!r})")
        _check_recommendation(got, rows, task, f"a {size:g}B model ({task})", student, size, 128.0)


@check("memory", "memory_recommendation", 0.5, "recommendations for inference and training, and when nothing fits")
def recommendation(student, rng):
    for size, budget, task in REC_ANCHORS + _cases(rng, "inference", 2) + _cases(rng, "training", 2):
        got, rows = _table(student, size, budget, task, "analyze_model_memory")
        _check_recommendation(got, rows, task, f"{task} (size and budget not shown)", student, size, budget)


@check("memory", "memory_bad_input", 1, "a negative model size and a zero budget", hidden=False)
def bad_input(student, rng):
    from grader.sandbox import StudentError

    # Raising ValueError on everything is not validation: a valid size must give a table, computed from it.
    _, rows = _table(student, 7, 128.0, "inference", "analyze_model_memory(7)")
    computed(student, rows, 7, 128.0, "inference", "analyze_model_memory(7)")
    for args, kwargs, what in (((-7,), {}, "a negative model size"), ((7,), {"memory_budget_gb": 0}, "a budget of 0 GB")):
        try:
            student.call("analyze_model_memory", *args, **kwargs)
        except StudentError as exc:
            if exc.kind == "NotImplementedError" or not exc.from_student:
                raise
            if exc.kind != "ValueError":
                raise Fail(f"analyze_model_memory with {what} should raise ValueError, it raised {exc.kind}.")
        else:
            raise Fail(f"analyze_model_memory with {what} should raise ValueError with a clear message.")
