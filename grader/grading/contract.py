"""The exercise contract: every grade cell is an exercise with registered checks, same points.

The exercises are declared once, in the lab's checks (``exercise(...)`` plus its ``@check``s;
an exercise's points are the sum of its checks' points). The notebook builder writes the grade
cells' points from it, the demo and the tests read their totals from it, and nbgrader is
stopped when a notebook disagrees with its lab (nbgrader's assignment id names the lab):

* ``ContractFirstExporter`` (``generate_assignment``, ``c.GenerateAssignment.exporter_class``): every
  grade cell of each source notebook must be a declared exercise with the same points, and every
  exercise must have a grade cell. nbgrader builds its exporter after listing the source notebooks
  and before it removes the previous release (``--force``, or a newer source), so a refused
  notebook leaves the release students fetch as it was. ``CheckContract`` (a preprocessor) checks
  the same while the notebook converts, for a course configured without the exporter.
* ``CheckGradebookContract`` (``autograde``): the same for the gradebook's record of the
  assignment (what nbgrader scores against; a stale gradebook from an older release is refused).

Without this, a grade cell with no checks would get nbgrader's default (full marks), and a
grade cell's points could drift from the checks' (18/22 for a perfect answer).
"""

from __future__ import annotations

import os
from typing import Iterable

from nbconvert.exporters import NotebookExporter
from nbgrader.converters.base import NbGraderException
from nbgrader.preprocessors import NbGraderPreprocessor


class ContractError(NbGraderException):
    """The notebook's grade cells and the registered checks disagree (nbgrader exits 1 on it)."""


def problems(grade_cells: Iterable[tuple[str, float]], lab=None) -> list[str]:
    """What is wrong with ``(grade_id, points)`` pairs against ``lab``'s exercises (a Lab or its id)."""
    from .labs import resolve

    lab = resolve(lab)
    CONTRACT = lab.exercises.contract

    out, seen = [], set()
    for gid, points in grade_cells:
        seen.add(gid)
        ex = CONTRACT.get(gid)
        if ex is None:
            out.append(f"grade cell {gid!r} has no registered checks (declare the exercise in lab {lab.id!r}'s checks; "
                       "nbgrader would give it full marks by default)")
        elif abs(float(points or 0) - ex.points) > 1e-9:
            out.append(f"grade cell {gid!r} is worth {float(points or 0):g} points but its checks give "
                       f"{ex.points:g} (the points come from lab {lab.id!r}'s checks; rebuild the notebook)")
    for gid in CONTRACT:
        if gid not in seen:
            out.append(f"exercise {gid!r} has checks but no grade cell with grade_id {gid!r}")
    return out


def notebook_grade_cells(nb) -> list[tuple[str, float]]:
    cells = []
    for c in nb.cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and c.get("cell_type") == "code":
            cells.append((meta.get("grade_id"), meta.get("points", 0)))
    return cells


def check_notebook(nb, lab=None) -> None:
    bad = problems(notebook_grade_cells(nb), lab)
    if bad:
        raise ContractError("the notebook does not match the exercise contract:\n  " + "\n  ".join(bad))


class CheckContract(NbGraderPreprocessor):
    """generate_assignment: refuse a source notebook whose grade cells disagree with the checks."""

    def preprocess(self, nb, resources):
        check_notebook(nb, _lab(resources))
        return nb, resources


class ContractFirstExporter(NotebookExporter):
    """generate_assignment's exporter: checks every notebook nbgrader is about to release, before
    nbgrader removes anything (it builds the exporter between listing the notebooks and clearing the
    release folder). A refusal is one error naming each notebook and problem; nbgrader exits 1."""

    def __init__(self, **kw):
        super().__init__(**kw)
        import nbformat

        listed = getattr(self.parent, "assignments", None) or {}
        bad = []
        from pathlib import Path

        from .. import config
        from .labs import get_lab

        for folder in sorted(listed):
            for path in sorted(listed[folder]):
                try:
                    lab = get_lab(os.path.basename(os.path.normpath(folder)), config.find_course_root(Path.cwd()))
                    found = problems(notebook_grade_cells(nbformat.read(path, as_version=4)), lab)
                except Exception as exc:  # noqa: BLE001 - an unreadable source notebook is refused too
                    found = [f"cannot be read: {exc}"]
                bad += [f"{os.path.normpath(path)}: {p}" for p in found]
        if bad:
            release = getattr(getattr(self.parent, "coursedir", None), "release_directory", "the release folder")
            where = ", ".join(f"{release}/{os.path.basename(os.path.normpath(f))}/" for f in sorted(listed))
            msg = ("refused: the source notebook does not match the exercise contract, so nothing was released and "
                   f"the previous release in {where} is unchanged:\n  " + "\n  ".join(bad))
            self.log.error(msg)
            raise ContractError(msg)


class CheckGradebookContract(NbGraderPreprocessor):
    """autograde: refuse to score against a gradebook whose grade cells disagree with the checks."""

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook

        info = resources.get("nbgrader", {})
        if not info.get("db_url"):
            check_notebook(nb, _lab(resources))
            return nb, resources
        with Gradebook(info["db_url"]) as gb:
            source = gb.find_notebook(info["notebook"], info["assignment"])
            cells = [(g.name, g.max_score) for g in source.grade_cells if g.cell_type == "code"]
        bad = problems(cells, _lab(resources))
        if bad:
            raise ContractError("the gradebook's grade cells do not match the exercise contract (run "
                                "`nbgrader generate_assignment --force` after changing checks):\n  " + "\n  ".join(bad))
        return nb, resources


def _lab(resources):
    """The lab of nbgrader's assignment id (the course folder is the current one, as nbgrader's)."""
    from pathlib import Path

    from .. import config
    from .labs import get_lab

    return get_lab(resources.get("nbgrader", {}).get("assignment", ""), config.find_course_root(Path.cwd()))


__all__ = ["CheckContract", "CheckGradebookContract", "ContractError", "ContractFirstExporter", "check_notebook",
           "problems"]
