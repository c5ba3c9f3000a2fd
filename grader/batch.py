"""Grade a class in parallel while nbgrader walks it one student at a time.

nbgrader's autograde is serial (jupyter/nbgrader#174). When ``TrustedGrade`` sees its first
submission it starts grading the other submitted notebooks of the assignment in a pool of
``jobs`` sandboxes, in nbgrader's order. When nbgrader reaches a student, the prefetched
report is used only if it was computed from exactly the code cells nbgrader hands over
(after its sanitizing); otherwise the notebook is graded again on the spot. Either way the
score is what ``python -m grader grade`` gives for those cells.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from fnmatch import fnmatch
from typing import Optional

from . import config
from .grade import Report, grade_cells
from .nbfile import NotebookError, read_cells


def cells_key(cells: list[str]) -> str:
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def default_jobs() -> int:
    env = os.environ.get("LAB_GRADER_JOBS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _student_filter() -> str:
    """The --student pattern nbgrader was started with ('*' when none)."""
    argv = sys.argv
    for i, a in enumerate(argv):
        for flag in ("--student", "--CourseDirectory.student_id"):
            if a == flag and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(flag + "="):
                return a.split("=", 1)[1]
    return "*"


class Prefetcher:
    """One per nbgrader process and assignment: a pool grading ahead of nbgrader."""

    _instances: dict[tuple[str, str], "Prefetcher"] = {}
    _lock = threading.Lock()

    def __init__(self, settings: config.Settings, assignment: str, notebook: str, jobs: int):
        self.settings = settings
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lab-grader")
        self.futures: dict[str, tuple[str, Future]] = {}
        submitted = settings.course_root / "submitted"
        pattern = _student_filter()
        students = sorted(p.name for p in submitted.iterdir() if p.is_dir() and fnmatch(p.name, pattern)) \
            if submitted.is_dir() else []
        for sid in students:
            path = submitted / sid / assignment / f"{notebook}.ipynb"
            try:
                cells = read_cells(path)
            except NotebookError:
                continue
            self.futures[sid] = (cells_key(cells), self.pool.submit(grade_cells, cells, label=sid, settings=settings))

    @classmethod
    def get(cls, settings: config.Settings, assignment: str, notebook: str) -> Optional["Prefetcher"]:
        jobs = default_jobs()
        if jobs < 2:
            return None
        key = (assignment, notebook)
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = Prefetcher(settings, assignment, notebook, jobs)
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
