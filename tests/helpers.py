"""Build submissions from the model solution, for the corpus and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "lab321" / "lab321.ipynb"
FULL = {"snr": 6.0, "memory": 6.0, "advisor": 6.0}


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
