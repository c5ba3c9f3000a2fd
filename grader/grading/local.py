"""The notebook's check cells: run an exercise's PUBLIC checks on the notebook's own functions.

Each grade cell of the lab calls::

    try:
        from grader.grading.local import run_public
    except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
        print("...how to run the self-check...")
    else:
        run_public("memory", globals())

:func:`run_public` runs the same :class:`~grader.grading.checks.Check` objects the grader runs (only
those with ``hidden=False``), through the same ``run_check`` and with the same plain-data
encoding as the sandbox, so a check cell says exactly what the self-check and the public part
of the grade say. Hidden checks never run here. Scores do not come from these cells: the
trusted grader (``grader.grading.grade``) runs every check in its own process and nbgrader's record of
each grade cell is replaced by that result (``grader.course.nbgrader_plugin``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional


PUBLIC_SEED = "public-self-check"  # public inputs only; the course's hidden seed never reaches a notebook


class NamespaceStudent:
    """The student as the checks see it, backed by a namespace (the notebook's ``globals()``).

    ``call(name, *args, **kwargs)`` calls the notebook's function and ``get(name)`` reads a
    global; arguments and results cross the sandbox's plain-data encoding (tensors in, numbers,
    dicts and numpy arrays out), so checks see what they would see from the sandbox.
    """

    def __init__(self, namespace: Mapping[str, Any]):
        self.ns = namespace

    def call(self, name: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        from ..sandbox import StudentError
        from ..sandbox.worker.codec import decode, encode, encode_arg, to_torch

        fn = self.ns.get(name)
        if fn is None:
            raise StudentError(f"NameError: {name} is not defined after running the notebook", kind="NameError")
        a, k = to_torch(encode_arg(list(args))), to_torch(encode_arg(kwargs))
        try:
            value = fn(*a, **k)
        except Exception as exc:  # noqa: BLE001 - the student's exception, as the sandbox reports it
            raise StudentError(str(exc), from_student=True, kind=type(exc).__name__) from None
        return decode(encode(value))

    def get(self, name: str) -> Any:
        from ..sandbox import StudentError
        from ..sandbox.worker.codec import decode, encode

        if name not in self.ns:
            raise StudentError(f"NameError: {name} is not defined after running the notebook", kind="NameError")
        return decode(encode(self.ns[name]))


def run_public(exercise_id: str, namespace: Mapping[str, Any], out: Callable[[str], Any] = print,
               lab: Optional[str] = None) -> list:
    """Run exercise ``exercise_id``'s public checks on ``namespace``; print one line per check.

    Returns the :class:`grader.grading.grade.CheckResult` list. Raises AssertionError (after printing
    every line) when a public check fails, so the cell shows the failure as an nbgrader check
    cell does. Hidden checks are counted, never run.
    """
    from .grade import check_line, run_check

    ex = find_exercise(exercise_id, lab)
    student = NamespaceStudent(namespace)
    results = [run_check(student, c, PUBLIC_SEED) for c in ex.checks if not c.hidden]
    for r in results:
        out(check_line(r))
    passed = sum(r.points for r in results)
    hidden = ex.points - ex.public_points
    out(f"{ex.title}: public checks {passed:g} / {ex.public_points:g} points. Hidden checks worth {hidden:g} "
        "more points run only when the notebook is graded.")
    failed = [r.name for r in results if not r.passed]
    if failed:
        raise AssertionError(f"{ex.title}: {len(failed)} public check(s) failed: {', '.join(failed)} (messages above)")
    return results


def find_exercise(exercise_id: str, lab: Optional[str] = None):
    """The exercise ``exercise_id`` of ``lab`` (default: the one lab of the course that declares it)."""
    from .. import config
    from .labs import all_labs

    labs = all_labs(config.find_course_root())
    candidates = [labs[lab]] if lab in labs else [] if lab else list(labs.values())
    found = [lb.exercises.contract[exercise_id] for lb in candidates if exercise_id in lb.exercises.contract]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(e for lb in candidates for e in lb.exercises.contract)
        raise KeyError(f"no exercise {exercise_id!r} in lab {lab or ', '.join(labs)}; exercises: {known}")
    raise KeyError(f"exercise {exercise_id!r} is in several labs ({', '.join(e.registry.lab for e in found)}): "
                   f"call run_public({exercise_id!r}, globals(), lab=...)")

