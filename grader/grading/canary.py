"""The canary: the instructor's model solution, graded in the environment about to grade a class.

Before a class is graded (``nbgrader autograde``, ``device-check``, batch commands), the model
solution (the lab's instructor notebook, ``source/<lab>/<lab>.ipynb`` by default) is graded with the same settings. Anything
short of full marks means the environment, not the students, is broken (a missing module, a
sandbox that cannot start, a check that no longer matches the notebook): the run stops with
the reason, and nothing is scored.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from .. import config
from .grade import Report, grade_path
from .labs import Lab, resolve
from ..sandbox import EnvironmentFault


class CanaryFailed(EnvironmentFault):
    """The model solution did not get full marks here: grading this class would be unfair."""


_RESULTS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def model_solution(settings: config.Settings, lab: "Lab | str | None" = None) -> Path:
    return resolve(lab, settings).model_solution(settings.course_root)


def run_canary(settings: config.Settings, lab: "Lab | str | None" = None) -> Report:
    """Grade ``lab``'s model solution once per process, lab and settings; raise CanaryFailed unless full marks."""
    lab = resolve(lab, settings)
    key = (lab.id, str(settings.course_root), settings.hidden_seed, settings.isolation, settings.min_isolation,
           settings.device, tuple(settings.worker_imports), settings.limits)
    with _LOCK:
        if key not in _RESULTS:
            _RESULTS[key] = _grade(settings, lab)
        result = _RESULTS[key]
    if isinstance(result, CanaryFailed):
        raise result
    return result


def _grade(settings: config.Settings, lab: Lab):
    path = lab.model_solution(settings.course_root)
    if not path.is_file():
        return CanaryFailed(f"canary: the model solution {path} is missing, so this environment cannot be checked "
                            "before grading; restore source/ (nbgrader's instructor copy)")
    try:
        report = grade_path(path, settings=settings, lab=lab)
    except EnvironmentFault as exc:
        return CanaryFailed(f"canary: grading the model solution failed: {exc}")
    if report.total < report.max_total:
        failed = [f"{c.name}: {c.message}" for e in report.exercises.values() for c in e.checks if not c.passed]
        return CanaryFailed(
            f"canary: {lab.id}'s model solution scored {report.total:g} / {report.max_total:g} in this environment "
            f"(isolation {report.isolation}), so the students' scores could not be trusted. Failed: "
            + "; ".join(failed[:4]) + ("; notes: " + "; ".join(report.notes[:3]) if report.notes else ""))
    return report


def canary_line(report: Optional[Report]) -> str:
    if report is None:
        return "canary: not run"
    return (f"canary: model solution {report.total:g} / {report.max_total:g} "
            f"(isolation {report.isolation}, {report.seconds:.1f} s)")


def nbgrader_pre_convert_hook(assignment=None, student=None, notebooks=None, **_):
    """``c.Autograde.pre_convert_hook``: runs before nbgrader writes anything for a student.

    nbgrader swallows an Exception from this hook, but not SystemExit: a failed canary stops
    ``nbgrader autograde`` before the first submission is entered in the gradebook.
    """
    settings = config.load(Path.cwd())
    try:
        report = run_canary(settings, assignment)
    except CanaryFailed as exc:
        raise SystemExit(f"lab-grader: grading stopped, nothing was scored: {exc}") from None
    _announce(canary_line(report))


_ANNOUNCED: set = set()


def _announce(line: str) -> None:
    if line not in _ANNOUNCED:
        _ANNOUNCED.add(line)
        import logging
        logging.getLogger("lab_grader").warning(line)
        print(f"lab-grader: {line}", flush=True)
