"""Exercise ``memory``: analyze_model_memory (Exercise 1 as a function)."""

from __future__ import annotations

import reference
from reference.lab import ANALYSIS_PRECISIONS

from . import EXERCISES, Fail, as_dict, as_number, check, close, ratio_hint

EXERCISES["memory"] = "Exercise 1: memory analysis"
REL = 1e-3  # the notebook states: memory within 0.1%


def _table(student, size, budget, task, what):
    kwargs = {"memory_budget_gb": budget, "task": task}
    got = as_dict(student.call("analyze_model_memory", size, **kwargs), what, ("precisions", "recommendation"))
    table = as_dict(got["precisions"], f"{what}['precisions']", ANALYSIS_PRECISIONS)
    return got, table, reference.analyze_model_memory(size, budget, task)


def _cases(rng, task, n=3):
    return [(round(float(rng.uniform(1, 250)), 1), float(rng.choice([16, 24, 48, 80, 96, 128, 192, 256])), task)
            for _ in range(n)]


def _check_values(student, cases, label):
    for size, budget, task in cases:
        got, table, want = _table(student, size, budget, task, f"analyze_model_memory for {label}")
        for p in ANALYSIS_PRECISIONS:
            entry = as_dict(table[p], f"the {p!r} entry for {label}", ("memory_gb",))
            g = as_number(entry["memory_gb"], f"memory_gb of {p} for {label}")
            w = want["precisions"][p]["memory_gb"]
            if not close(g, w, REL):
                raise Fail(f"memory_gb of {p} for {label} is off by more than 0.1%.{ratio_hint(g, w)} "
                           "Check the bytes per parameter, GB = 1e9 bytes, and the task's rule.")


@check("memory", "memory_34b_inference", 1, "a 34B model, inference, 128 GB", hidden=False)
def public_34b(student, rng):
    _check_values(student, [(34, 128.0, "inference")], "a 34B model (inference)")
    got, table, want = _table(student, 34, 128.0, "inference", "analyze_model_memory(34)")
    if got["recommendation"] != want["recommendation"]:
        raise Fail("analyze_model_memory(34): the recommendation is not the first inference rung that fits.")


@check("memory", "memory_inference_values", 1, "several model sizes, inference")
def inference_values(student, rng):
    _check_values(student, _cases(rng, "inference"), "inference of other model sizes")


@check("memory", "memory_training_values", 1, "several model sizes, training")
def training_values(student, rng):
    _check_values(student, _cases(rng, "training"), "training of other model sizes")


@check("memory", "memory_fits_budget", 1, "custom budgets, including a model exactly at the budget")
def fits_budget(student, rng):
    cases = _cases(rng, "inference", 2) + _cases(rng, "training", 2) + [(10.0, 80.0, "training")]
    for size, budget, task in cases:
        label = "custom budgets" if (size, budget) != (10.0, 80.0) else "a model exactly at the budget"
        got, table, want = _table(student, size, budget, task, f"analyze_model_memory with {label}")
        for p in ANALYSIS_PRECISIONS:
            if as_dict(table[p], p, ("fits",))["fits"] is not want["precisions"][p]["fits"]:
                raise Fail(f"'fits' of {p} is wrong for {label} ({task}). A model fits when its memory is "
                           "<= memory_budget_gb: use the budget you are given.")


@check("memory", "memory_recommendation", 1, "recommendations for inference and training, and when nothing fits")
def recommendation(student, rng):
    cases = _cases(rng, "inference", 2) + _cases(rng, "training", 3) + [(900.0, 64.0, "training")]
    for size, budget, task in cases:
        got, table, want = _table(student, size, budget, task, "analyze_model_memory")
        if got["recommendation"] != want["recommendation"]:
            extra = " FP4 is not a training format." if task == "training" and got["recommendation"] == "fp4" else ""
            nothing = " When nothing fits, the recommendation is None." if want["recommendation"] is None else ""
            raise Fail(f"the recommendation for {task} is not the first rung of the {task} ladder that fits."
                       f"{extra}{nothing}")


@check("memory", "memory_bad_input", 1, "a negative model size and a zero budget", hidden=False)
def bad_input(student, rng):
    from grader.sandbox import StudentError

    # Raising ValueError on everything is not validation: a valid size must give a table.
    as_dict(student.call("analyze_model_memory", 7), "analyze_model_memory(7)", ("precisions", "recommendation"))
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
