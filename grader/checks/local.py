"""The notebook's check cells: run an exercise's PUBLIC checks on the notebook's own functions.

Each grade cell of the lab calls::

    try:
        from grader.checks.local import run_public
    except Exception:  # the course package is not importable here (not installed, or the grading sandbox)
        print("...how to run the self-check...")
    else:
        run_public("memory", globals())

:func:`run_public` runs the same :class:`~grader.checks.Check` objects the grader runs (only
those with ``hidden=False``), through the same ``_run_check`` and with the same plain-data
encoding as the sandbox, so a check cell says exactly what the self-check and the public part
of the grade say. Hidden checks never run here. Scores do not come from these cells: the
trusted grader (``grader.grade``) runs every check in its own process and nbgrader's record of
each grade cell is replaced by that result (``grader.nbgrader_plugin``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from . import CONTRACT

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
        from .. import worker_src
        from ..sandbox import StudentError, decode, encode_arg

        fn = self.ns.get(name)
        if fn is None:
            raise StudentError(f"NameError: {name} is not defined after running the notebook", kind="NameError")
        a, k = worker_src.decode(encode_arg(list(args))), worker_src.decode(encode_arg(kwargs))
        try:
            value = fn(*a, **k)
        except Exception as exc:  # noqa: BLE001 - the student's exception, as the sandbox reports it
            raise StudentError(str(exc), from_student=True, kind=type(exc).__name__) from None
        return decode(worker_src.encode(value))

    def get(self, name: str) -> Any:
        from .. import worker_src
        from ..sandbox import StudentError, decode

        if name not in self.ns:
            raise StudentError(f"NameError: {name} is not defined after running the notebook", kind="NameError")
        return decode(worker_src.encode(self.ns[name]))


def run_public(exercise_id: str, namespace: Mapping[str, Any], out: Callable[[str], Any] = print) -> list:
    """Run exercise ``exercise_id``'s public checks on ``namespace``; print one line per check.

    Returns the :class:`grader.grade.CheckResult` list. Raises AssertionError (after printing
    every line) when a public check fails, so the cell shows the failure as an nbgrader check
    cell does. Hidden checks are counted, never run.
    """
    from ..grade import _run_check, check_line

    ex = CONTRACT.get(exercise_id)
    if ex is None:
        raise KeyError(f"no exercise {exercise_id!r}; exercises: {', '.join(CONTRACT)}")
    student = NamespaceStudent(namespace)
    results = [_run_check(student, c, PUBLIC_SEED) for c in ex.checks if not c.hidden]
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
