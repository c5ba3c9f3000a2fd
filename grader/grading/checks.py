"""Graded checks as data: one :class:`Check` per scored behaviour, grouped by exercise, one
:class:`Registry` per lab (the lab's own checks; see ``grader.grading.labs``).

A check receives the student (an object with ``call(name, *args, **kwargs)`` and
``get(name)`` that reach the sandbox) and a numpy ``Generator`` seeded from the course's
hidden seed and the check's name, and raises :class:`Fail` with a student-facing message
when the behaviour is wrong. Messages name the input class and what was wrong, never a
hidden input or a hidden expected value. A public check's message is shown as it is; a hidden
check that fails shows only its fixed :attr:`Check.hidden_failure` (the grader applies that rule
in ``grader.grading.grade``, whatever the failure), so the details a hidden check computes stay inside
the grader.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


import contextvars

HIDDEN = contextvars.ContextVar("lab_check_hidden", default=True)  # set by the grader around each check


def shown(value: Any, limit: int = 40) -> str:
    """A value the student returned, as a message may show it: on public checks a short repr;
    on hidden checks nothing (a returned string can carry the hidden inputs out)."""
    if HIDDEN.get():
        return "your value"
    return repr(value)[:limit]


class Fail(Exception):
    """The student's answer is wrong; the message is shown to the student."""


@dataclass(frozen=True)
class Check:
    exercise: str
    name: str
    points: float
    hidden: bool
    what: str  # the input class, shown to students: "identical tensors", "training, custom budgets"
    run: Callable[[Any, np.random.Generator], None]
    lab: str = ""  # the id of the lab whose registry holds it (part of the hidden inputs' seed)

    @property
    def hidden_failure(self) -> str:
        """The one text a failed hidden check shows, whatever went wrong: fixed by the grader.

        A hidden check's own :class:`Fail` text, the student's exception, an exit code or a
        timeout never reach a report: anything the student's code chooses could carry the
        hidden inputs out (a count of wrong codes, an exception's type, an exit code)."""
        return (f"your code does not give the reference's result for {self.what}. Hidden checks show no details, "
                "whatever went wrong; the public checks (the notebook's check cells) show them on their inputs.")


@dataclass(frozen=True)
class Exercise:
    """One graded exercise, declared once: its id is the notebook grade cell's grade_id."""

    id: str
    title: str
    order: int
    registry: "Registry" = field(default=None, compare=False, repr=False)

    @property
    def checks(self) -> list[Check]:
        return [c for c in self.registry.checks if c.exercise == self.id]

    @property
    def points(self) -> float:
        return float(sum(c.points for c in self.checks))

    @property
    def public_points(self) -> float:
        return float(sum(c.points for c in self.checks if not c.hidden))


class Registry:
    """One lab's exercises and checks (``LAB_CHECKS.exercise(...)``, ``@LAB_CHECKS.check(...)``).

    Each lab has its own: a notebook is graded against its lab's exercises only, and a check's
    hidden inputs derive from the course seed and the lab's id.
    """

    def __init__(self, lab: str):
        self.lab = lab
        self.checks: list[Check] = []
        self.contract: dict[str, Exercise] = {}  # id -> Exercise, in declaration order

    def exercise(self, id: str, title: str, order: int) -> Exercise:
        """Declare an exercise (once, in its checks module); its points are the sum of its checks'."""
        if id in self.contract:
            raise ValueError(f"{self.lab}: exercise {id!r} is declared twice")
        self.contract[id] = ex = Exercise(id, title, order, self)
        return ex

    def check(self, exercise: str, name: str, points: float, what: str, hidden: bool = True):
        def deco(fn):
            if exercise not in self.contract:
                raise ValueError(f"{self.lab}: check {name!r} belongs to undeclared exercise {exercise!r}")
            if any(c.name == name for c in self.checks):
                raise ValueError(f"{self.lab}: check {name!r} is registered twice")
            self.checks.append(Check(exercise, name, points, hidden, what, fn, self.lab))
            return fn
        return deco

    def by_exercise(self) -> dict[str, list[Check]]:
        """Checks per exercise, exercises in the notebook's order (the contract's)."""
        return {ex.id: ex.checks for ex in sorted(self.contract.values(), key=lambda e: e.order)}

    def full_marks(self) -> dict[str, float]:
        return {ex_id: ex.points for ex_id, ex in self.contract.items()}

    def title(self, exercise: str) -> str:
        return self.contract[exercise].title

    def validate(self) -> None:
        """An exercise without checks would be full marks by nbgrader's default: refuse it."""
        if not self.contract:
            raise ValueError(f"lab {self.lab!r} declares no exercises")
        for ex in self.contract.values():
            if not ex.checks:
                raise ValueError(f"{self.lab}: exercise {ex.id!r} has no registered checks")


def rng_for(seed: str, check: Check) -> np.random.Generator:
    """Hidden inputs: unpredictable without the course's seed, identical on every regrade."""
    digest = hashlib.sha256(f"{seed}/{check.lab}/{check.exercise}/{check.name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


# ---------------------------------------------------------------------------------------
# comparison helpers: validate the student's plain data before comparing it
# ---------------------------------------------------------------------------------------

def as_number(value: Any, what: str) -> float:
    """A number: Python int/float, numpy scalar, 0-d (or one-element) array or tensor alike."""
    if isinstance(value, (bool, np.bool_)):
        raise Fail(f"{what}: expected a number, got a bool.")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return float(value.reshape(()))
    if hasattr(value, "detach") and hasattr(value, "numel") and value.numel() == 1:  # a torch tensor (in-process)
        return float(value.detach().reshape(()).item())
    kind = "nothing (None)" if value is None else f"a {type(value).__name__}"
    raise Fail(f"{what}: expected a number, got {kind}. Return a float (e.g. float(x) or tensor.item()).")


def as_name(value: Any, what: str) -> Any:
    """A precision name, normalised: "FP8", " Fp8 " and "fp8" are the same answer. None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Fail(f"{what}: expected a precision name such as 'fp8' (a string), got a {type(value).__name__}.")
    return value.strip().lower()


def as_bool(value: Any, what: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and str(value.dtype) in ("bool", "torch.bool"):
        return bool(value)
    raise Fail(f"{what}: expected True or False, got {shown(value)}.")


def lower_keys(d: dict) -> dict:
    """A dict whose string keys are compared case-insensitively ("FP32" and "fp32")."""
    return {(k.strip().lower() if isinstance(k, str) else k): v for k, v in d.items()}


# GB values: the notebook states "within 0.1% or 0.05 GB, whichever is larger", so an answer rounded to
# 1 decimal (as the notebook's own prints are) or to 2 decimals gets full marks.
GB_REL = 1e-3
GB_ABS = 0.05


def gb_close(got: float, want: float) -> bool:
    return close(got, want, GB_REL, GB_ABS)


def gb_hint(got: float, want: float) -> str:
    """The likely cause of a wrong GB value (units, headroom, rounding), never the value itself."""
    hint = ratio_hint(got, want)
    if hint:
        return hint
    if math.isfinite(got) and got == round(got) and abs(got - want) < 0.5:
        return " Your value looks rounded to a whole GB: keep at least one decimal."
    return ""


def as_dict(value: Any, what: str, keys: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        kind = "nothing (None)" if value is None else f"a {type(value).__name__}"
        raise Fail(f"{what}: expected a dict, got {kind}.")
    missing = [k for k in keys if k not in value]
    if missing:
        raise Fail(f"{what}: the dict is missing key(s) {', '.join(map(repr, missing))}.")
    return value


def close(got: float, want: float, rel: float, abs_: float = 0.0) -> bool:
    if math.isinf(want) or math.isnan(want):
        return got == want or (math.isnan(want) and math.isnan(got))
    return math.isfinite(got) and abs(got - want) <= max(abs_, rel * abs(want))


def ratio_hint(got: float, want: float) -> str:
    """A hint from the ratio of the student's value to the expected one, not the value itself."""
    if not (math.isfinite(got) and math.isfinite(want)) or want == 0 or got == 0:
        return ""
    r = got / want
    for k, hint in ((2.0, "twice too large: 20*log10 is for amplitude ratios; a power ratio takes 10*log10"),
                    (0.5, "half the expected size: did you take the ratio of amplitudes (RMS) instead of powers?"),
                    (1.2, "20% too large"), (1 / 1.2, "too small by a factor 1.2: is the inference headroom missing?"),
                    (1e9 / 2**30, "about 7% too small: that is GiB (2**30 bytes); the lab uses GB = 1e9 bytes"),
                    (1e3, "1000x too large: that is MB; the lab uses GB"),
                    (1e9, "1e9x too large: that is bytes; the lab uses GB = 1e9 bytes"),
                    (4.0, "4x too large"), (0.25, "4x too small")):
        if abs(r - k) < 1e-3 * k:
            return f" Your value is {hint}."
    return ""
