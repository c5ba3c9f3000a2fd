"""Grade one notebook: run it in the sandbox, then score every check in this process."""

from __future__ import annotations

import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


from .. import config
from . import teaching
from .nbfile import read_cells
from .checks import HIDDEN, Check, Fail, rng_for
from .labs import Lab, resolve
from ..sandbox import LEVELS, BudgetExceeded, EnvironmentFault, Sandbox, StudentError
from ..sandbox.text import clean


class IsolationError(EnvironmentFault):
    """The sandbox could not reach the isolation level the course requires."""


@dataclass
class CheckResult:
    name: str
    passed: bool
    points: float
    max_points: float
    hidden: bool
    message: str

    def public_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "points": self.points, "message": self.message}


@dataclass
class ExerciseResult:
    id: str
    title: str
    score: float
    max_score: float
    checks: list[CheckResult] = field(default_factory=list)


@dataclass
class Report:
    notebook: str
    total: float
    max_total: float
    exercises: dict[str, ExerciseResult]
    isolation: str
    isolation_detail: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cells: list = field(default_factory=list, repr=False)  # per code cell: stdout, stderr, error

    def to_json(self) -> dict:
        return {
            "total": self.total,
            "max_total": self.max_total,
            "exercises": {
                k: {"score": e.score, "max_score": e.max_score, "checks": [c.public_dict() for c in e.checks]}
                for k, e in self.exercises.items()
            },
            "isolation": self.isolation,
            "isolation_detail": self.isolation_detail,
            "notes": self.notes,
        }


def grade_cells(cells: list[str], *, label: str = "notebook", exercises: Optional[list[str]] = None,
                include_hidden: bool = True, settings: Optional[config.Settings] = None,
                lab: "Lab | str | None" = None, run_teaching_cells: bool = False) -> Report:
    """Run ``cells`` in a sandbox and score ``lab``'s checks. The core of every grading path.

    The lab's teaching cells (tagged ``teaching``: they only show something) are left out unless
    ``run_teaching_cells`` or a cell that runs uses a name they bind (:mod:`grader.grading.teaching`).

    Raises :class:`EnvironmentFault` (or :class:`IsolationError`) when the grading machine,
    not the submission, is at fault: such a run must not be scored at all.
    """
    settings = settings or config.load()
    start = time.monotonic()
    lab = resolve(lab, settings)
    groups = lab.exercises.by_exercise()
    wanted = exercises or list(groups)
    allow_fallback = LEVELS.index(settings.min_isolation) < LEVELS.index("namespaces")
    if not run_teaching_cells:  # (neither call raises: code it cannot read runs as it is)
        cells = teaching.without_teaching(list(cells), teaching.for_lab(lab, settings.course_root))
    with Sandbox(cells, limits=settings.limits, level=settings.isolation, course_root=settings.course_root,
                 device=settings.device, allow_fallback=allow_fallback,
                 imports=tuple(settings.worker_imports) + tuple(lab.worker_imports)) as sb:
        run = sb.wait_ready()
        if run.fault:
            raise IsolationError(f"{run.fault} (a problem of the grading machine, not of the submission; "
                                 "nothing was scored)")
        if LEVELS.index(run.level) < LEVELS.index(settings.min_isolation):
            raise IsolationError(
                f"the sandbox reached isolation level '{run.level}' but the course requires "
                f"'{settings.min_isolation}' ({run.detail}). Run as root or enable unprivileged user "
                "namespaces, or lower LabGrader.min_isolation in course_config.py (or set "
                "LAB_MIN_ISOLATION=process) on a machine where only trusted code runs."
            )
        notes = []
        if run.fatal:
            notes.append(run.fatal)
        for i, c in enumerate(run.cells, 1):
            if c.error and c.error != "not run":
                notes.append(f"code cell {i} raised {c.error.splitlines()[0][:300]}")
        # Public checks first: nothing a hidden call leaves in the notebook's memory or files
        # can reach a public check's message (hidden checks never show the student's text).
        # From the first hidden call on, every note and message the sandbox makes is a fixed text
        # (sb.seal): a crash in a chosen cell or an exit code could carry the hidden inputs out.
        todo = [c for ex in wanted for c in groups[ex] if include_hidden or not c.hidden]
        done = {}
        public_phase = None  # (fatal, restarts) when the first hidden call starts: notes end there
        for c in sorted(todo, key=lambda c: c.hidden):
            if c.hidden and public_phase is None:
                public_phase = (run.fatal, run.restarts)
                sb.seal()
            done[c.name] = run_check(sb, c, settings.hidden_seed)
        # What happened after the first hidden call (a crash, a restart, a fatal stop) is not a
        # note at all: even a fixed text's presence would be one bit the student's code chose.
        fatal, restarts = public_phase or (run.fatal, run.restarts)
        results = {}
        for ex in wanted:
            crs = [done[c.name] for c in groups[ex] if c.name in done]
            results[ex] = ExerciseResult(ex, lab.exercises.title(ex), round(sum(c.points for c in crs), 6),
                                         float(sum(c.max_points for c in crs)), crs)
        if fatal and fatal not in notes:  # the notebook went bad during the public calls
            notes.insert(0, fatal)
        if restarts:
            notes.append("the notebook's process was started again after a call or a cell ended it (its cells ran again)")
    total = round(sum(e.score for e in results.values()), 6)
    max_total = float(sum(e.max_score for e in results.values()))
    return Report(label, total, max_total, results, run.level, run.detail, notes, time.monotonic() - start,
                  cells=run.cells)


def run_check(sb: Sandbox, check: Check, seed: str) -> CheckResult:
    """Run one check against the student (the sandbox, or the check cells' namespace) and score it."""
    token = HIDDEN.set(check.hidden)  # messages of hidden checks show no value the student returned
    try:
        return _run_check_inner(sb, check, seed)
    finally:
        HIDDEN.reset(token)


def _run_check_inner(sb: Sandbox, check: Check, seed: str) -> CheckResult:
    failure = _failure(sb, check, seed)
    if failure is None:
        return CheckResult(check.name, True, float(check.points), check.points, check.hidden, "passed")
    # The rule for every hidden check, whatever went wrong (a wrong value, an exception, a crash, a
    # timeout, the time budget, an odd form, a stub): one fixed text per check, chosen by the grader.
    # No count, index, exit code, exception type or hint, since the student's code decides those and
    # could encode the hidden inputs in them; the public checks give the details on public inputs.
    message = check.hidden_failure if check.hidden else failure
    return CheckResult(check.name, False, 0.0, check.points, check.hidden, message)


def _failure(sb: Sandbox, check: Check, seed: str) -> Optional[str]:
    """Run ``check``: None if it passed, else what went wrong (shown for public checks only)."""
    try:
        check.run(sb, rng_for(seed, check))
    except EnvironmentFault:
        raise
    except BudgetExceeded as exc:
        return f"not run: {exc} (cells that sleep or loop, or slow calls, use it up)"
    except Fail as exc:
        return str(exc)
    except StudentError as exc:
        if exc.kind == "NotImplementedError" or (exc.kind == "NameError" and not exc.from_student):
            return f"not implemented yet ({exc.kind}): fill in the stub, run the cell, and save the notebook"
        return f"calling your code on {check.what} failed: {' '.join(str(exc).split())}"  # one line: no fake [PASS]
    except Exception as exc:  # noqa: BLE001 - odd data from the student that slipped past validation
        return f"your answer for {check.what} has an unexpected form ({type(exc).__name__}); see the exercise's instructions"
    return None


def grade_path(path: Path, **kwargs: Any) -> Report:
    return grade_cells(read_cells(path), label=str(path), **kwargs)


FEEDBACK_WIDTH = 100


CONTINUED = " " * 7 + "| "  # starts every wrapped continuation line: never a check line's start
_TAG = re.compile(r"\[\s*(PASS|FAIL)\s*\]", re.IGNORECASE)


def defang(text: str) -> str:
    """Text that may carry a student's words (messages, notes): no "[PASS]"/"[FAIL]" of its own."""
    return _TAG.sub(lambda m: f"({m.group(1)})", text)


_TRUSTED_PHRASE = re.compile(r"graded by the trusted grader", re.IGNORECASE)


def defang_output(text: str) -> str:
    """A non-grade cell's output (printed by the student's code): it cannot imitate the trusted
    grader's feedback, so no "[PASS]"/"[FAIL]" and no "graded by the trusted grader"."""
    return _TRUSTED_PHRASE.sub("printed by the notebook, not graded", defang(text))


def check_line(c: CheckResult) -> str:
    tag = "hidden check" if c.hidden else "public check"
    if c.passed:
        return f"[PASS] {c.name} ({tag}, {c.max_points:g} pt)"
    return f"[FAIL] {c.name} ({tag}, 0 / {c.max_points:g} pt): {defang(c.message)}"


def report_lines_for_exercise(e: ExerciseResult, r: Report) -> list[str]:
    lines = [f"{e.title}: {e.score:g} / {e.max_score:g} points (graded by the trusted grader, isolation: {r.isolation})"]
    lines += ["  " + check_line(c) for c in e.checks]
    if r.notes and e.score < e.max_score:
        lines.append("  notes from running your notebook: " + defang("; ".join(r.notes[:3])))
    # wrapped (the formgrader and feedback show outputs in a <pre> that does not wrap); each
    # continuation line starts with CONTINUED, so a student's text never starts a line of its own
    return [part for line in lines
            for part in textwrap.wrap(clean(line), FEEDBACK_WIDTH, subsequent_indent=CONTINUED,
                                      break_long_words=True, break_on_hyphens=False) or [""]]


def format_report(r: Report) -> str:
    """Human-readable feedback: per exercise, per check, what was wrong and what to do."""
    lines = [f"{r.notebook}: {r.total:g} / {r.max_total:g} points  (isolation: {r.isolation}; {r.isolation_detail})"]
    for e in r.exercises.values():
        lines.append(f"  {e.id:<8} {e.score:>4g} / {e.max_score:<4g} {e.title}")
        lines += ["      " + check_line(c) for c in e.checks]
    for n in r.notes:
        lines.append(f"  note: {defang(n)}")
    return "\n".join(clean(line) for line in lines)
