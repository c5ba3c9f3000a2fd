"""Getting submissions in from an LMS and grades out to one (nbgrader plugins).

Collecting (``nbgrader zip_collect lab321``), ``c.ZipCollectApp.collector_plugin =
"grader.course.lms.LmsFileNameCollector"``: file names of Canvas's and Moodle's "download
submissions" zips:

    Canvas:  doejane_1234_56789_lab321.ipynb, doejane_LATE_1234_56789_lab321-1.ipynb
    Moodle:  Jane Doe_98765_assignsubmission_file_lab321.ipynb  (student id: "jane_doe")

Canvas's "-1" resubmission suffix is removed; other names are kept (autograde then warns
that the notebook was renamed).

Exporting (``nbgrader export --exporter=grader.course.lms.CanvasExport --to canvas.csv``): Canvas's
gradebook-import CSV; ``--exporter=grader.course.lms.ChecksExport --to checks.csv``: one row per
student and check. A student with no gradable notebook (none submitted, renamed,
unreadable) gets an empty cell, never a 0.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any, Optional

from nbgrader.plugins import ExportPlugin, FileNameCollectorPlugin
from traitlets import List, Unicode

from ..grading.results import GRADED, SUFFIX, read_record, write_checks_csv
from ..grading.text import clean

CANVAS = r"^(?P<student_id>[A-Za-z0-9.\-]+)_(?:LATE_)?(?:\d+_)?\d+_\d+_(?P<file_id>.+)$"
MOODLE = r"^(?P<student_id>[^_/]+)_\d+_assignsubmission_(?:file|onlinetext)_?(?P<file_id>.+)$"


class LmsFileNameCollector(FileNameCollectorPlugin):
    """FileNameCollectorPlugin that knows Canvas's and Moodle's download names (tried in order)."""

    patterns = List(Unicode(), default_value=[CANVAS, MOODLE],
                    help="Regular expressions with named groups student_id and file_id, tried in order on "
                    "each file's path relative to the extracted folder.").tag(config=True)

    def collect(self, submitted_file: str) -> Optional[dict]:
        _, ext = os.path.splitext(submitted_file)
        if ext not in self.valid_ext:
            return None
        name = os.path.basename(submitted_file)
        parent = os.path.basename(os.path.dirname(submitted_file))
        # Moodle's newer zips: "Jane Doe_98765_assignsubmission_file_/lab321.ipynb"
        for pat in self.patterns:
            m = re.match(pat, name) or (re.match(pat, parent + name) if parent.endswith("_") else None)
            if m:
                gd = m.groupdict()
                sid = re.sub(r"[^A-Za-z0-9.\-]+", "_", gd["student_id"].strip()).strip("_").lower()
                fid = re.sub(r"-\d+(\.ipynb)$", r"\1", gd["file_id"])  # Canvas: lab321-1.ipynb is a resubmission
                return {"student_id": sid, "file_id": fid}
        self.log.warning("not a Canvas or Moodle download name, skipped: %s", clean(name))
        return None


def _coursedir(plugin: Any):
    obj = plugin
    for _ in range(6):
        if obj is None:
            break
        cd = getattr(obj, "coursedir", None)
        if cd is not None:
            return cd
        obj = getattr(obj, "parent", None)
    return None


def _root_and_autograded(plugin: Any) -> tuple[Path, str]:
    cd = _coursedir(plugin)
    if cd is not None:
        return Path(cd.root), cd.autograded_directory
    return Path.cwd(), "autograded"


def gradable(root: Path, autograded: str, student: str, assignment: str, notebooks: list[str]) -> bool:
    """Every notebook of the submission was graded by the trusted grader (its checks file says so)."""
    for nb in notebooks:
        rec = read_record(root / autograded / student / assignment / f"{nb}{SUFFIX}")
        if rec is None or rec.get("status") != GRADED:
            return False
    return bool(notebooks)


def _selected(plugin: ExportPlugin, gradebook) -> tuple[list, list]:
    assignments = [a for a in gradebook.assignments if not plugin.assignment or a.name in plugin.assignment]
    students = [s for s in gradebook.students if not plugin.student or s.id in plugin.student]
    return sorted(assignments, key=lambda a: (a.duedate is None, a.duedate or 0, a.name)), \
        sorted(students, key=lambda s: s.id)


def final_scores(plugin: ExportPlugin, gradebook) -> tuple[list, list, dict]:
    """(assignments, students, {(student, assignment): final score or None})."""
    root, autograded = _root_and_autograded(plugin)
    assignments, students = _selected(plugin, gradebook)
    out = {}
    for a in assignments:
        nbs = [n.name for n in a.notebooks]
        for s in students:
            try:
                sub = gradebook.find_submission(a.name, s.id)
            except Exception:  # noqa: BLE001 - MissingEntry: nothing submitted
                out[(s.id, a.name)] = None
                continue
            if not gradable(root, autograded, s.id, a.name, nbs):
                out[(s.id, a.name)] = None
                continue
            out[(s.id, a.name)] = round(max(0.0, sub.score - (sub.late_submission_penalty or 0.0)), 6)
    return assignments, students, out


class CanvasExport(ExportPlugin):
    """Canvas gradebook-import CSV: Student, ID, SIS User ID, SIS Login ID, Section, one column per assignment."""

    id_column = Unicode("SIS Login ID", help="The Canvas column that holds nbgrader's student id "
                        "(SIS Login ID, SIS User ID or ID).").tag(config=True)
    section = Unicode("", help="The Section column's value for every student.").tag(config=True)

    def export(self, gradebook) -> None:
        dest = self.to or "canvas_grades.csv"
        assignments, students, scores = final_scores(self, gradebook)
        head = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
        with open(dest, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(head + [a.name for a in assignments])
            w.writerow(["Points Possible", "", "", "", ""] + [f"{a.max_score:g}" for a in assignments])
            for s in students:
                name = ", ".join(x for x in (s.last_name, s.first_name) if x) or s.id
                row = {"Student": name, "ID": "", "SIS User ID": "", "SIS Login ID": "", "Section": self.section}
                row[self.id_column] = s.id
                vals = [scores[(s.id, a.name)] for a in assignments]
                w.writerow([clean(row[h]) for h in head] + ["" if v is None else f"{v:g}" for v in vals])
        self.log.info("Canvas gradebook CSV: %s (%d students; empty = no gradable notebook)", dest, len(students))


class ChecksExport(ExportPlugin):
    """One row per student and check, from the checks files next to the autograded notebooks."""

    def export(self, gradebook) -> None:
        from ..grading.results import missing_record

        dest = self.to or "checks.csv"
        root, autograded = _root_and_autograded(self)
        assignments, students = _selected(self, gradebook)
        records = []
        for a in assignments:
            for nb in (n.name for n in a.notebooks):
                for s in students:
                    rec = read_record(root / autograded / s.id / a.name / f"{nb}{SUFFIX}")
                    records.append(rec if rec and rec.get("status") == GRADED else
                                   missing_record(s.id, a.name, nb, "missing", "no gradable notebook"))
        write_checks_csv(records, Path(dest))
        self.log.info("per-check CSV: %s", dest)
