"""Grade a class in parallel while nbgrader walks it one student at a time.

nbgrader's autograde is serial (jupyter/nbgrader#174). When ``TrustedGrade`` sees its first
submission it works out which submissions nbgrader will process in this run (its own
``--student`` filter, ``--CourseDirectory.student_id_exclude``, and its rule for skipping a
submission whose autograded copy exists and is not older than the submission, unless
``--force``), and grades those, and only those, ahead in a pool of ``jobs`` sandboxes, in
nbgrader's order. Regrading one late student therefore costs about one notebook.

When nbgrader reaches a student, the prefetched report is used only if it was computed from
exactly the code cells nbgrader hands over (after its sanitizing); otherwise the notebook is
graded again on the spot. Either way the score is what ``python -m grader grade`` gives for
those cells.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Optional

from .. import config
from ..grading.grade import Report, grade_cells
from ..grading.nbfile import NotebookError, read_cells
from .progress import Progress

log = logging.getLogger("lab_grader")


def cells_key(cells: list[str]) -> str:
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def default_jobs(settings: Optional[config.Settings] = None) -> int:
    env = os.environ.get("LAB_GRADER_JOBS")
    if env:
        return max(1, int(env))
    if settings is not None and settings.jobs > 0:
        return settings.jobs
    return max(1, min(4, os.cpu_count() or 1))


def _argv_value(flags: tuple[str, ...]) -> Optional[str]:
    argv = sys.argv
    for i, a in enumerate(argv):
        for flag in flags:
            if a == flag and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(flag + "="):
                return a.split("=", 1)[1]
    return None


def _student_filter() -> str:
    """The --student pattern nbgrader was started with ('*' when none)."""
    return _argv_value(("--student", "--CourseDirectory.student_id")) or "*"


def _argv_force() -> bool:
    v = _argv_value(("--BaseConverter.force", "--Autograde.force"))
    return "--force" in sys.argv or "-f" in sys.argv or (v or "").lower() in ("true", "1")


def find_converter(obj: Any) -> Any:
    """nbgrader's converter (Autograde) above a preprocessor: preprocessor -> exporter -> converter."""
    seen = 0
    while obj is not None and seen < 8:
        if hasattr(obj, "coursedir") and hasattr(obj, "assignments") and hasattr(obj, "force"):
            return obj
        obj = getattr(obj, "parent", None)
        seen += 1
    return None


@dataclass
class Pending:
    student: str
    path: Path  # the submitted notebook


def _timestamp(folder: Path):
    from nbgrader.utils import parse_utc

    p = folder / "timestamp.txt"
    try:
        text = p.read_text().strip()
        return parse_utc(text) if text else None
    except (OSError, ValueError):
        return None


def will_process(submitted: Path, dest: Path, notebook: str, force: bool, excluded: set[str], student: str) -> bool:
    """nbgrader 0.9's BaseConverter.init_destination, without its side effects (deleting old copies)."""
    if student in excluded:
        return False
    if not (dest / f"{notebook}.ipynb").exists():
        return True
    if force:
        return True
    new, old = _timestamp(submitted), _timestamp(dest)
    return new is not None and old is not None and new > old


def plan_from_converter(conv: Any, assignment: str, notebook: str, current: str) -> list[Pending]:
    """The submissions nbgrader will process in this run, in its order, from ``current`` on."""
    cd = conv.coursedir
    # the converter's own _format_source follows its phase (sanitizing reads submitted/, autograding
    # autograded/): build the submitted/ pattern from the course directory itself
    regexp = cd.format_path(cd.submitted_directory, "(?P<student_id>.*)", "(?P<assignment_id>.*)", escape=True)
    excluded = set(filter(None, (cd.student_id_exclude or "").split(",")))
    out, started = [], False
    for src in sorted(conv.assignments.keys()):
        m = re.match(regexp, src)
        if m is None or m.group("assignment_id") != assignment:
            continue
        sid = m.group("student_id")
        started = started or sid == current
        if not started:
            continue  # nbgrader has already skipped it
        dest = Path(cd.format_path(cd.autograded_directory, sid, assignment))
        if sid == current or will_process(Path(src), dest, notebook, bool(conv.force), excluded, sid):
            out.append(Pending(sid, Path(src) / f"{notebook}.ipynb"))
    return out


def plan_from_argv(root: Path, assignment: str, notebook: str) -> list[Pending]:
    """Without the converter at hand: the same rule from the command line and nbgrader's default layout."""
    submitted = root / "submitted"
    pattern, force = _student_filter(), _argv_force()
    students = sorted(p.name for p in submitted.iterdir() if p.is_dir() and fnmatch(p.name, pattern)) \
        if submitted.is_dir() else []
    return [Pending(sid, submitted / sid / assignment / f"{notebook}.ipynb") for sid in students
            if will_process(submitted / sid / assignment, root / "autograded" / sid / assignment, notebook,
                            force, set(), sid)]


_NO_NOTEBOOK: dict[str, set] = {}  # assignment -> students the pre-convert hook found without a gradable notebook


def note_no_notebook(assignment: str, student: str) -> None:
    """Counted in the progress line (nbgrader fails or zeroes such a submission; TrustedGrade never sees it)."""
    with Prefetcher._lock:
        _NO_NOTEBOOK.setdefault(assignment, set()).add(student)
        pre = next((p for (a, _), p in Prefetcher._instances.items() if a == assignment), None)
    if pre is not None:
        pre.progress.step(unreadable=True, who=student)


class Prefetcher:
    """One per nbgrader process and assignment: the run's plan, its progress, and a pool grading ahead."""

    _instances: dict[tuple[str, str], "Prefetcher"] = {}
    _lock = threading.Lock()

    def __init__(self, settings: config.Settings, assignment: str, notebook: str, jobs: int,
                 plan: Optional[list[Pending]] = None):
        self.settings = settings
        self.plan = plan if plan is not None else plan_from_argv(settings.course_root, assignment, notebook)
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lab-grader") if jobs >= 2 else None
        self.futures: dict[str, tuple[str, Future]] = {}
        self.prefetched = 0  # notebooks handed to the pool (what grading ahead costs)
        early = [sid for sid in _NO_NOTEBOOK.get(assignment, ()) if sid not in {p.student for p in self.plan}]
        self.progress = Progress(len(self.plan) + len(early), label="graded by nbgrader autograde")
        for sid in _NO_NOTEBOOK.get(assignment, ()):  # found by the hook before the first notebook was graded
            self.progress.step(unreadable=True, who=sid)
        if self.pool is not None:
            for p in self.plan:
                try:
                    cells = read_cells(p.path)
                except NotebookError:
                    continue
                self.futures[p.student] = (cells_key(cells),
                                           self.pool.submit(grade_cells, cells, label=p.student, settings=settings,
                                                             lab=assignment))
                self.prefetched += 1
        log.warning("grading ahead: %d of the %d submission(s) nbgrader will process in this run (%d sandboxes)",
                    self.prefetched, len(self.plan), jobs if self.pool else 1)
        print(f"lab-grader: grading ahead {self.prefetched} of {len(self.plan)} submission(s) this run will "
              f"process", file=sys.stderr, flush=True)

    @classmethod
    def get(cls, settings: config.Settings, assignment: str, notebook: str, student: str = "",
            converter: Any = None) -> "Prefetcher":
        key = (assignment, notebook)
        with cls._lock:
            if key not in cls._instances:
                plan = None
                if converter is not None:
                    try:
                        plan = plan_from_converter(converter, assignment, notebook, student)
                    except Exception as exc:  # noqa: BLE001 - another nbgrader: fall back on the command line
                        log.warning("grading ahead: cannot read nbgrader's plan (%s); using the command line", exc)
                cls._instances[key] = Prefetcher(settings, assignment, notebook, default_jobs(settings), plan)
            return cls._instances[key]

    def report(self, student: str, cells: list[str]) -> Optional[Report]:
        entry = self.futures.pop(student, None)
        if entry is None:
            return None
        key, fut = entry
        if key != cells_key(cells):
            fut.cancel()
            return None  # nbgrader's sanitizing changed the cells: grade what it hands over
        report = fut.result()
        report.notebook = student
        return report
