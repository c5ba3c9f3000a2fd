"""nbgrader integration: ``TrustedGrade`` replaces nbgrader's Execute preprocessor.

The lab is nbgrader's assignment id (``resources["nbgrader"]["assignment"]``,
grader.grading.labs). nbgrader's own path runs the tests inside the student's kernel, where student code can
rewrite them. Here the submission runs in the sandbox (grader.sandbox), the checks run in
nbgrader's own process, and each grade cell's outputs are replaced by the trusted feedback
and the score, which nbgrader's SaveAutoGrades then records (a number as the last output
is partial credit; see nbgrader.utils.determine_grade).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor
from nbformat.v4 import new_output

from .. import config
from .prefetch import Prefetcher, find_converter
from ..grading.grade import IsolationError, defang_output, grade_cells, report_lines_for_exercise
from ..sandbox.text import clean


class TrustedGrade(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        settings = config.load(Path.cwd())
        cells = [c.source for c in nb.cells if c.cell_type == "code"]
        info = resources.get("nbgrader", {})
        label = info.get("student", "submission")
        report = None
        pre = None
        conv = find_converter(self)
        if info.get("assignment") and info.get("notebook"):
            pre = Prefetcher.get(settings, info["assignment"], info["notebook"], label, conv)
            report = pre.report(label, cells)
        how = "prefetched in parallel" if report is not None else "graded now"
        if report is None:
            report = grade_cells(cells, label=label, settings=settings, lab=info.get("assignment") or None)
        self.log.info("trusted grading of %s (%s): %g / %g points (isolation %s)", label, how, report.total,
                      report.max_total, report.isolation)
        if info.get("assignment") and info.get("notebook"):
            self._keep_checks(report, label, info["assignment"], info["notebook"], conv, settings)
        if pre is not None:
            pre.progress.step(full=report.total >= report.max_total, who=label)
        code_i = 0
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            ran = report.cells[code_i] if code_i < len(report.cells) else None
            code_i += 1
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id")
            if meta.get("grade") and gid in report.exercises:
                ex = report.exercises[gid]
                text = "\n".join(report_lines_for_exercise(ex, report)) + "\n"
                cell.outputs = [new_output("stream", name="stdout", text=text),
                                new_output("execute_result", data={"text/plain": repr(float(ex.score))},
                                           execution_count=None)]
            else:
                outs = []
                # what the student's code printed: shown, but it cannot pass for the grader's feedback
                if ran is not None and ran.stdout:
                    outs.append(new_output("stream", name="stdout", text=defang_output(ran.stdout)))
                if ran is not None and ran.error and ran.error != "not run":
                    name, _, value = ran.error.partition(": ")
                    outs.append(new_output("error", ename=defang_output(name), evalue=defang_output(value[:500]),
                                           traceback=[]))
                cell.outputs = outs
        resources.setdefault("lab_grader", {})["report"] = report.to_json()
        return nb, resources

    def _keep_checks(self, report, student, assignment, notebook, conv, settings) -> None:
        """Per-check results next to the autograded notebook (nbgrader removes the folder on regrade)."""
        from .results import SUFFIX, record_of, write_record

        if conv is not None:
            cd = conv.coursedir
            dest = Path(cd.format_path(cd.autograded_directory, student, assignment))
        else:
            dest = settings.course_root / "autograded" / student / assignment
        write_record(record_of(report, student, assignment, notebook), dest / f"{notebook}{SUFFIX}")


def pre_convert_hook(assignment=None, student=None, notebooks=None, **kw):
    """``c.Autograde.pre_convert_hook``: the canary (before anything is scored), then a warning when
    the submission's notebook was renamed (for a course without ``AutogradeExporter``, which leaves
    such a submission out before nbgrader reaches it)."""
    from ..grading.canary import nbgrader_pre_convert_hook
    from .results import locate

    nbgrader_pre_convert_hook(assignment=assignment, student=student, notebooks=notebooks, **kw)
    if not notebooks:
        return
    folder = Path(notebooks[0]).parent  # nbgrader passes the filter as `student`; the paths name the student
    sid, assignment_id = folder.parent.name, folder.name
    settings = config.load(Path.cwd())
    from ..grading.labs import get_lab

    path, kind, reason = locate(folder, get_lab(assignment_id, settings.course_root).notebook_name)
    if kind in ("renamed", "unreadable"):
        import logging

        from .prefetch import note_no_notebook

        text = f"WARNING: {sid}: no gradable notebook ({kind}): {reason}"
        logging.getLogger("lab_grader").warning(text)
        print(f"lab-grader: {clean(text)}", file=sys.stderr, flush=True)
        note_no_notebook(assignment_id, sid)


class SanitizeStudentContent(NbGraderPreprocessor):
    """What the formgrader and the feedback show is cleaned first (grader/course/sanitize.py)."""

    def preprocess(self, nb, resources):
        from .sanitize import sanitize_notebook, trusted_sources

        settings = config.load(Path.cwd())
        info = resources.get("nbgrader", {})
        from ..grading.labs import resolve

        lab = resolve(info.get("assignment") or None, settings)
        trusted = trusted_sources(lab.model_solution(settings.course_root))
        n = sanitize_notebook(nb, trusted)
        if n:
            self.log.info("sanitized %d cell(s) written by %s", n, info.get("student", "the student"))
        return nb, resources


def ungradable(conv) -> list[tuple[str, str, str, str, str]]:
    """(folder, student, assignment, kind, reason) of each submission nbgrader listed that has no gradable notebook.

    Gradable is what nbgrader itself grades: ``<folder>/<notebook>.ipynb`` for a notebook of the
    assignment in the gradebook, readable as a notebook. Otherwise nbgrader fails the student
    ("No notebooks found", or a JSON traceback) and exits 1 after the class, on every later run too."""
    import re

    from nbgrader.api import Gradebook, MissingEntry

    from ..grading.nbfile import NotebookError, read_cells
    from .results import locate

    cd = conv.coursedir
    regexp = cd.format_path(cd.submitted_directory, "(?P<student_id>.*)", "(?P<assignment_id>.*)", escape=True)
    names: dict[str, list[str]] = {}
    out = []
    for folder in sorted(conv.assignments):
        m = re.match(regexp, folder)
        if m is None:
            continue
        sid, aid = m.group("student_id"), m.group("assignment_id")
        if aid not in names:
            try:
                with Gradebook(cd.db_url, cd.course_id) as gb:
                    names[aid] = [n.name for n in gb.find_assignment(aid).notebooks]
            except MissingEntry:
                names[aid] = []  # not generated yet: nbgrader says so itself
        if not names[aid]:
            continue
        kind = reason = ""
        for name in names[aid]:
            path = Path(folder) / f"{name}.ipynb"
            if not path.is_file():
                _, kind, reason = locate(Path(folder), name)
                if not kind:  # a notebook of that name deeper down: nbgrader looks only in the folder
                    kind, reason = "misplaced", (f"{name}.ipynb is not directly in the {aid} folder: move it there "
                                                 "and grade this student again")
                continue
            try:
                read_cells(path)
            except NotebookError as exc:
                kind, reason = "unreadable", str(exc).replace(str(path), path.name)
                continue
            kind = ""
            break
        if kind:
            out.append((folder, sid, aid, kind, reason))
    return out


def leave_out_ungradable(conv, log=None) -> list[str]:
    """Warn once per submission without a gradable notebook and drop it from nbgrader's run.

    The student stays on the gradebook's roster (exports show an empty cell, not a 0) and in the
    class report as "no gradable notebook"; once the notebook is renamed or fixed, the next
    autograde grades it. Returns the students left out."""
    import logging

    from nbgrader.api import Gradebook

    from .prefetch import note_no_notebook

    log = log or logging.getLogger("lab_grader")
    cd = conv.coursedir
    left = []
    for folder, sid, aid, kind, reason in ungradable(conv):
        log.warning(clean(f"{sid}: no gradable notebook ({kind}): {reason}; the other students are graded"))
        if getattr(conv, "create_student", True):
            with Gradebook(cd.db_url, cd.course_id) as gb:
                gb.update_or_create_student(sid)
        note_no_notebook(aid, sid)
        del conv.assignments[folder]
        left.append(sid)
    return left


from nbconvert.exporters import NotebookExporter  # noqa: E402


class AutogradeExporter(NotebookExporter):
    """autograde's exporter (``c.Autograde.exporter_class``). nbgrader builds it after listing the
    submissions and before it touches any folder, so a submission without a gradable notebook
    (renamed, unreadable) is left out here: a warning for that student, exit 0 for the class."""

    def __init__(self, **kw):
        super().__init__(**kw)
        conv = find_converter(self.parent)
        if conv is not None and isinstance(getattr(conv, "assignments", None), dict):
            leave_out_ungradable(conv, self.log)


from nbgrader.preprocessors import ClearHiddenTests  # noqa: E402
from traitlets import List  # noqa: E402


class FeedbackClearHiddenTests(ClearHiddenTests):
    """nbgrader's ClearHiddenTests for generate_feedback. The HTML exporter configures every
    NbConvertBase's ``display_data_priority``; nbgrader's preprocessors declare it without
    ``config=True``, so traitlets warned "Config option `display_data_priority` not recognized"."""

    display_data_priority = List(NbGraderPreprocessor.display_data_priority.default_value,
                                 help="Output types in order of preference (set by nbconvert's exporter; "
                                 "unused here).").tag(config=True)


__all__ = ["TrustedGrade", "SanitizeStudentContent", "IsolationError", "AutogradeExporter",
           "FeedbackClearHiddenTests", "leave_out_ungradable", "ungradable"]


from nbgrader.preprocessors import OverwriteCells  # noqa: E402


class RobustOverwriteCells(OverwriteCells):
    """OverwriteCells whose restoring of deleted grade cells survives lost metadata.

    nbgrader 0.9.6 puts a missing grade cell after the previous solution cell, and raises
    KeyError when that cell's metadata was lost too (a copy-pasted notebook), failing the
    whole submission. Here missing grade cells are appended at the end instead; trusted
    grading does not depend on where they sit.
    """

    def add_missing_grade_cells(self, nb, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        source_cells = {c.name: c for c in source_nb.source_cells}
        solution_ids = {c.name for c in source_nb.solution_cells}
        present = {c.metadata.nbgrader["grade_id"] for c in nb.cells
                   if "nbgrader" in c.metadata and "grade_id" in c.metadata.nbgrader}
        for grade_cell in source_nb.grade_cells:
            if grade_cell.name not in present:
                self.log.warning("Missing grade cell %s: restored at the end of the notebook", grade_cell.name)
                nb.cells.append(self.missing_cell_transform(source_cells[grade_cell.name], grade_cell.max_score,
                                                            is_solution=grade_cell.name in solution_ids))
        return nb, resources
