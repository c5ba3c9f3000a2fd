"""Getting submissions in from an LMS and grades out to one (nbgrader plugins).

Collecting (``nbgrader zip_collect lab321``), ``c.ZipCollectApp.collector_plugin =
"grader.course.lms.LmsFileNameCollector"``: file names of Canvas's and Moodle's "download
submissions" zips:

    Canvas:  doejane_1234_56789_lab321.ipynb, doejane_LATE_1234_56790_lab321-1.ipynb
             (sortable name, LATE if Canvas marks it late, user id, file number, file name)
    Moodle:  Jane Doe_98765_assignsubmission_file_lab321.ipynb, or in a folder
             Jane Doe_98765_assignsubmission_file_/lab321.ipynb (name, participant id, file name)

The whole download is planned before the first file is copied (``plan``), so nbgrader never
meets a duplicate:

* the LMS's id decides who a file belongs to: a gradebook student whose ``lms_user_id`` is that
  id, else the id ``LmsFileNameCollector.student_id_format`` makes (``doejane_1234``), so two
  John Smiths stay two students and "Jane Doe"/"jane doe" with one id stay one;
* of two files of one student for one notebook (``lab321.ipynb`` and Canvas's ``lab321-1.ipynb``)
  the newest by the LMS's own file number is collected, the other one is listed as superseded;
* Canvas's LATE marker carries no time (the zip's entry times are the time of the download), so
  a LATE file gets the timestamp "due date + grace + ``late_marker_seconds``": the least lateness
  the marker proves, i.e. the penalty of one started day. A TA who knows the real time writes it
  to ``submitted/<student>/lab321/timestamp.txt`` and autogrades that student again;
* every file (collected, superseded, skipped and why) is listed in
  ``downloaded/<assignment>/collect_report.csv``.

Exporting (``nbgrader export --exporter=grader.course.lms.CanvasExport --to canvas.csv``): Canvas's
gradebook-import CSV; ``--exporter=grader.course.lms.ChecksExport --to checks.csv``: one row per
student and check, and one ``late_penalty`` row for a late student. Both show the final score
(``grader.course.late.final_score``). A student with no gradable notebook (none submitted, renamed,
unreadable) gets an empty cell, never a 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from nbgrader.plugins import ExportPlugin, FileNameCollectorPlugin
from traitlets import Dict, Float, Unicode

from .late import final_score, lateness_of
from .results import GRADED, SUFFIX, read_record, write_checks_csv
from ..sandbox.text import clean

# Canvas: lib/content_zipper.rb, get_filename: "<sortable name>[_LATE]_<user id or anon_<id>>_<file id>_<name>"
CANVAS = (r"^(?:(?!LATE_)(?P<name>[^/]+?)_)?(?:(?P<late>LATE)_)?(?P<lms_id>\d+|anon_[A-Za-z0-9]+)_"
          r"(?P<file_no>\d+)_(?P<file_id>[^/]+)$")
# Moodle: mod/assign download_submissions: "<full name>_<participant id>_assignsubmission_file_[/]<name>"
MOODLE = r"^(?P<name>[^_/]+)_(?P<lms_id>\d+)_assignsubmission_(?:file|onlinetext)_/?(?P<file_id>[^/]+)$"
COLLECTED, SUPERSEDED, SKIPPED = "collected", "superseded", "skipped"
REPORT = "collect_report.csv"


@dataclass
class Item:
    """One file of an LMS download and what collecting does with it."""

    rel: str  # path inside the extracted folder (what the report shows)
    path: str = ""  # absolute path
    lms: str = ""
    name: str = ""
    lms_id: str = ""
    file_id: str = ""  # the notebook's name, the LMS's copy suffix removed
    late: bool = False
    file_no: Optional[int] = None  # the LMS's own file number (Canvas: grows with every upload)
    copy_no: int = 0  # Canvas's "-1", "-2" for a second upload under the same name
    student_id: str = ""
    outcome: str = SKIPPED
    detail: str = ""
    timestamp: Optional[dt.datetime] = None  # UTC


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.\-]+", "_", text.lower()).strip("_.")


def _strip_copy(file_id: str, released: Optional[list[str]]) -> tuple[str, int]:
    """'lab321-1.ipynb' -> ('lab321.ipynb', 1) unless 'lab321-1.ipynb' is itself a released notebook."""
    m = re.match(r"^(.*)-(\d+)(\.[^.]+)$", file_id)
    if m:
        base = m.group(1) + m.group(3)
        if released is None or (file_id not in released and base in released):
            return base, int(m.group(2))
    return file_id, 0


def parse(rel: str, patterns: dict[str, str], released: Optional[list[str]] = None) -> Item:
    """Who a file of an LMS download belongs to (``rel``: its path inside the extracted folder)."""
    item = Item(rel=rel)
    parts = rel.replace(os.sep, "/").split("/")
    candidates = [parts[-1]] + (["/".join(parts[-2:])] if len(parts) > 1 else [])
    for lms, pat in patterns.items():
        for cand in candidates:
            m = re.match(pat, cand)
            if m:
                gd = m.groupdict()
                item.lms, item.name, item.lms_id = lms, (gd.get("name") or "").strip(), gd["lms_id"]
                item.late = bool(gd.get("late"))
                item.file_no = int(gd["file_no"]) if gd.get("file_no") else None
                item.file_id, item.copy_no = _strip_copy(gd["file_id"], released)
                return item
    item.detail = ("not a Canvas or Moodle download name, so it belongs to no student: rename it as the LMS "
                   "does or set LmsFileNameCollector.patterns")
    return item


def _order(it: Item) -> tuple:
    return (-1 if it.file_no is None else it.file_no, it.copy_no, it.rel)


def _newer_by(old: Item, new: Item) -> str:
    if old.file_no is not None and new.file_no is not None and old.file_no != new.file_no:
        return f"the LMS's file number ({old.file_no} < {new.file_no})"
    if old.copy_no != new.copy_no:
        return f"the LMS's copy number (-{old.copy_no} < -{new.copy_no})" if old.copy_no else \
            f"the LMS's copy number (-{new.copy_no})"
    return "file name order only (the LMS gives no time for these two: check which one the student meant)"


def plan(items: list[Item], *, id_format: str = "{name}_{lms_id}", known: Optional[dict[str, str]] = None,
         due: Optional[dt.datetime] = None, late_offset: dt.timedelta = dt.timedelta(seconds=1)) -> list[Item]:
    """Decide each file's student (the LMS id decides), the one file per notebook that counts (the newest by
    the LMS's own numbers), and each student's timestamp (a late marker: due date + ``late_offset``)."""
    if "{lms_id}" not in id_format:
        raise ValueError(f"LmsFileNameCollector.student_id_format {id_format!r} has no '{{lms_id}}': two students "
                         "with one name would become one; add {lms_id}")
    known = known or {}
    groups: dict[tuple[str, str], list[Item]] = {}
    for it in items:
        if it.lms_id:
            groups.setdefault((it.lms, it.lms_id), []).append(it)
    owner: dict[str, str] = {}
    for (lms, lms_id), its in sorted(groups.items()):
        its.sort(key=_order)
        sid = known.get(lms_id) or id_format.format(name=_slug(its[-1].name), lms_id=lms_id).strip("_")
        if sid in owner:
            for it in its:
                it.detail = (f"student id {sid!r} already belongs to LMS id {owner[sid]}: give this student "
                             "another id (nbgrader db student add ... --lms-user-id=" + lms_id + ") and collect again")
            continue
        owner[sid] = lms_id
        by_nb: dict[str, list[Item]] = {}
        for it in its:
            it.student_id = sid
            by_nb.setdefault(it.file_id, []).append(it)
        winners = []
        for nb_name, cands in by_nb.items():
            win = cands[-1]
            win.outcome = COLLECTED
            winners.append(win)
            for old in cands[:-1]:
                old.outcome = SUPERSEDED
                old.detail = (f"the same file as {win.rel}" if old.file_no is not None and old.file_no == win.file_no
                              else f"an older copy of {nb_name}: {win.rel} is newer by {_newer_by(old, win)}")
        if any(w.late for w in winners):
            stamp = due + late_offset if due is not None else None
            for w in winners:
                w.timestamp = stamp
                w.detail = (f"marked late by the LMS, which gives no time: timestamp = due date + "
                            f"{late_offset.total_seconds():g} s (one started day late); write the real time to "
                            "timestamp.txt and autograde again if it was later" if stamp is not None else
                            "marked late by the LMS, but the assignment has no due date in the gradebook, so no "
                            "late penalty applies: set one (nbgrader db assignment add ASSIGNMENT --duedate=...) and "
                            "run nbgrader zip_collect --force again")
    return items


def write_collect_report(items: list[Item], path: Path) -> Path:
    """Every file of the download: collected, superseded (by which file) or skipped (why), one row each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "outcome", "student_id", "lms", "lms_id", "name", "notebook", "late", "timestamp",
                    "detail"])
        for it in sorted(items, key=lambda i: (i.student_id, i.outcome != COLLECTED, i.rel)):
            w.writerow([clean(x) for x in (it.rel, it.outcome, it.student_id, it.lms, it.lms_id, it.name, it.file_id,
                                           "LATE" if it.late else "", f"{it.timestamp:%Y-%m-%d %H:%M:%S} UTC"
                                           if it.timestamp else "", it.detail)])
    return path


class LmsFileNameCollector(FileNameCollectorPlugin):
    """FileNameCollectorPlugin for Canvas's and Moodle's download zips: plans the whole download first."""

    patterns = Dict(Unicode(), default_value={"canvas": CANVAS, "moodle": MOODLE},
                    help="LMS name -> regular expression with named groups lms_id and file_id (optional: name, "
                    "late, file_no), tried in order on each file's name and on 'folder/name'.").tag(config=True)
    student_id_format = Unicode("{name}_{lms_id}", help="nbgrader student id of a student the gradebook does not "
                                "know by lms_user_id ({name}: the LMS's name, lower case; {lms_id}: the LMS's id, "
                                "required).").tag(config=True)
    late_marker_seconds = Float(1.0, help="Seconds after the due date (and LabLatePenalty.grace_minutes) taken as "
                                "the submission time of a file the LMS marks late without a time.").tag(config=True)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._plans: dict[str, dict[str, Item]] = {}

    def collect(self, submitted_file: str) -> Optional[dict]:
        path = os.path.abspath(submitted_file)
        item = self._plan_for(path).get(path)
        if item is None or item.outcome != COLLECTED:
            return None
        info = {"student_id": item.student_id, "file_id": item.file_id}
        if item.timestamp is not None:
            info["timestamp"] = f"{item.timestamp:%Y-%m-%d %H:%M:%S} UTC"
        return info

    # -- the plan of one extracted folder ------------------------------------------------------------------
    def _plan_for(self, path: str) -> dict[str, Item]:
        root = self._extracted_root()
        if root is not None and path.startswith(root + os.sep):
            if root not in self._plans:
                files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
                self._plans[root] = {it.path: it for it in self._make_plan(root, files, report=True)}
            return self._plans[root]
        # a file outside zip_collect's extracted folder (a direct call): planned on its own
        return {it.path: it for it in self._make_plan(os.path.dirname(os.path.dirname(path)), [path], report=False)}

    def _extracted_root(self) -> Optional[str]:
        app = self.parent
        fmt = getattr(app, "_format_collect_path", None)
        if fmt is None or not getattr(app, "extracted_directory", None):
            return None
        return os.path.abspath(fmt(app.extracted_directory))

    def _make_plan(self, root: str, files: list[str], report: bool) -> list[Item]:
        cd = _coursedir(self)
        released, due, known = self._course_facts(cd)
        items = []
        for f in files:
            rel = os.path.relpath(f, root)
            ext = os.path.splitext(f)[1]
            if ext not in self.valid_ext:
                it = Item(rel=rel, detail=f"not a notebook ({ext or 'no extension'}): only "
                          f"{', '.join(self.valid_ext)} files are collected (FileNameCollectorPlugin.valid_ext)")
            else:
                it = parse(rel, self.patterns, released)
            it.path = f
            items.append(it)
        from .late import LabLatePenalty

        offset = dt.timedelta(seconds=60 * LabLatePenalty(parent=self).grace_minutes + self.late_marker_seconds)
        plan(items, id_format=self.student_id_format, known=known, due=due, late_offset=offset)
        if report:
            self._record(cd, items, known)
            dest = write_collect_report(items, Path(root).parent / REPORT)
            self._log(items, dest)
        return items

    def _course_facts(self, cd) -> tuple[Optional[list[str]], Optional[dt.datetime], dict[str, str]]:
        if cd is None or not getattr(cd, "assignment_id", ""):
            return None, None, {}
        from nbgrader.api import Gradebook, MissingEntry
        from nbgrader.utils import find_all_notebooks

        released = find_all_notebooks(cd.format_path(cd.release_directory, ".", cd.assignment_id)) or None
        with Gradebook(cd.db_url) as gb:
            try:
                due = gb.find_assignment(cd.assignment_id).duedate
            except MissingEntry:
                due = None
            known = {s.lms_user_id: s.id for s in gb.students if s.lms_user_id}
        return released, due, known

    def _record(self, cd, items: list[Item], known: dict[str, str]) -> None:
        """Keep each new student's LMS id in the gradebook (lms_user_id): the next download maps to the same id."""
        if cd is None:
            return
        from nbgrader.api import Gradebook, MissingEntry

        new = {it.student_id: it.lms_id for it in items if it.outcome == COLLECTED and it.lms_id not in known}
        if not new:
            return
        with Gradebook(cd.db_url) as gb:
            for sid, lms_id in sorted(new.items()):
                try:
                    if gb.find_student(sid).lms_user_id:
                        continue
                except MissingEntry:
                    pass
                gb.update_or_create_student(sid, lms_user_id=lms_id)

    def _log(self, items: list[Item], dest: Path) -> None:
        got = [i for i in items if i.outcome == COLLECTED]
        for it in items:
            if it.outcome != COLLECTED or it.late:
                self.log.warning("%s %s%s: %s", it.outcome, clean(it.rel),
                                 f" (student {it.student_id})" if it.student_id else "", clean(it.detail))
        self.log.info("LMS download: %d file(s) collected for %d student(s), %d superseded, %d skipped; every "
                      "file and why: %s", len(got), len({i.student_id for i in got}),
                      sum(i.outcome == SUPERSEDED for i in items), sum(i.outcome == SKIPPED for i in items), dest)
        if items and not got:
            self.log.error("no file of this download could be mapped to a student (%d skipped, listed in %s): is it "
                           "a Canvas or Moodle 'download submissions' zip?", len(items), dest)


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


def _submission(gradebook, assignment: str, student: str):
    from nbgrader.api import MissingEntry

    try:
        return gradebook.find_submission(assignment, student)
    except MissingEntry:
        return None


def final_scores(plugin: ExportPlugin, gradebook) -> tuple[list, list, dict]:
    """(assignments, students, {(student, assignment): final score or None}); final: grader.course.late.final_score."""
    root, autograded = _root_and_autograded(plugin)
    assignments, students = _selected(plugin, gradebook)
    out = {}
    for a in assignments:
        nbs = [n.name for n in a.notebooks]
        for s in students:
            sub = _submission(gradebook, a.name, s.id)
            ok = sub is not None and gradable(root, autograded, s.id, a.name, nbs)
            out[(s.id, a.name)] = final_score(sub.score, sub.late_submission_penalty) if ok else None
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
                # Canvas matches rows by its own user id first: the one zip_collect kept (lms_user_id)
                lms_id = s.lms_user_id if (s.lms_user_id or "").isdigit() else ""
                row = {"Student": name, "ID": lms_id, "SIS User ID": "", "SIS Login ID": "", "Section": self.section}
                row[self.id_column] = s.id
                vals = [scores[(s.id, a.name)] for a in assignments]
                w.writerow([clean(row[h]) for h in head] + ["" if v is None else f"{v:g}" for v in vals])
        self.log.info("Canvas gradebook CSV: %s (%d students; score less late penalty; empty = no gradable "
                      "notebook)", dest, len(students))


class ChecksExport(ExportPlugin):
    """One row per student and check (and a late_penalty row), from the checks files next to the autograded
    notebooks and the gradebook's late penalties."""

    def export(self, gradebook) -> None:
        from .results import missing_record

        dest = self.to or "checks.csv"
        root, autograded = _root_and_autograded(self)
        assignments, students = _selected(self, gradebook)
        records = []
        for a in assignments:
            for nb in (n.name for n in a.notebooks):
                for s in students:
                    rec = read_record(root / autograded / s.id / a.name / f"{nb}{SUFFIX}")
                    if rec and rec.get("status") == GRADED:
                        sub = _submission(gradebook, a.name, s.id)
                        rec["late"] = lateness_of(sub) if sub is not None else None
                        records.append(rec)
                    else:
                        records.append(missing_record(s.id, a.name, nb, "missing", "no gradable notebook"))
        write_checks_csv(records, Path(dest))
        self.log.info("per-check CSV: %s", dest)
