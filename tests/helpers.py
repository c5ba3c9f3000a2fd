"""Build submissions from the model solution, for the corpus and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader.grading.local import NamespaceStudent  # call() and get() as the sandbox answers them

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "lab321" / "lab321.ipynb"
from labs.lab321 import LAB  # noqa: E402 - the lab under test

FULL = LAB.exercises.full_marks()  # points per exercise, from the exercise contract (the lab's checks)


def solution_cells() -> list[tuple[str | None, str]]:
    """(grade_id or None, source) of every code cell of the instructor notebook."""
    nb = nbformat.read(SOURCE, as_version=4)
    return [(c.metadata.get("nbgrader", {}).get("grade_id"), c.source) for c in nb.cells if c.cell_type == "code"]


def build(replace: dict[str, str] | None = None, append: str | None = None, prepend: str | None = None,
          after: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> list[str]:
    """Code cells of a submission: the model solution with some cells replaced, added or dropped."""
    out = []
    if prepend:
        out.append(prepend)
    for gid, src in solution_cells():
        if gid in drop:
            continue
        out.append((replace or {}).get(gid, src))
        if after and gid in after:
            out.append(after[gid])
    if append:
        out.append(append)
    return out


def write_notebook(cells: list[str], path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


class LocalStudent(NamespaceStudent):
    """A submission run in this process, for fast tests of the checks (NOT a sandbox).

    The instructor notebook's cells run once per process; each submission re-runs only its
    own solution (and optionally check) cells in a copy of that namespace. Arguments and
    results cross the same plain-data encoding the sandbox uses, so checks see what they
    would see from the sandbox (0-d tensors as floats, arrays as numpy, tensors to the student).
    """

    _base: dict | None = None
    _order: list | None = None

    @classmethod
    def _baseline(cls):
        if cls._base is None:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            ns: dict = {}
            import contextlib
            import io
            show, plt.show = plt.show, (lambda *a, **k: None)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    for gid, src in solution_cells():
                        exec(compile(src, f"<cell {gid}>", "exec"), ns)
            finally:
                plt.show = show
                plt.close("all")
            cls._base, cls._order = ns, [gid for gid, _ in solution_cells() if gid]
        return cls._base

    def __init__(self, replace: dict[str, str] | None = None, run_check_cells: bool = False):
        import contextlib
        import io
        base = self._baseline()
        self.ns = dict(base)
        cells = dict(solution_cells())
        with contextlib.redirect_stdout(io.StringIO()):
            for gid in self._order:
                src = (replace or {}).get(gid, cells[gid])
                is_check = not gid.endswith(("_solution", "_answer")) and gid in _grade_ids()
                if is_check and not run_check_cells:
                    continue
                if gid.endswith(("_solution", "_answer")) or is_check:
                    exec(compile(src, f"<cell {gid}>", "exec"), self.ns)


def _grade_ids() -> set[str]:
    nb = nbformat.read(SOURCE, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def local_scores(student, seed: str) -> tuple[dict[str, float], dict[str, str]]:
    """(points per exercise, failure message per failed check) of ``student`` under ``seed``."""
    from grader.grading.grade import run_check
    scores, failed = {}, {}
    for ex, checks in LAB.exercises.by_exercise().items():
        scores[ex] = 0.0
        for c in checks:
            r = run_check(student, c, seed)
            scores[ex] += r.points
            if not r.passed:
                failed[c.name] = r.message
    return scores, failed
