"""Build the instructor notebook source/lab321/lab321.ipynb from its jupytext source lab321.py.

    .venv/bin/python source/build_lab.py            # lab321.py -> lab321.ipynb
    .venv/bin/python source/build_lab.py --check    # exit 1 when the two are out of sync

The lab is written in ``source/lab321/lab321.py``, a jupytext "percent" script: each cell starts
with ``# %%`` (``# %% [markdown]`` for text), and nbgrader's cell metadata sits in the cell's
header as JSON (``# %% nbgrader={"grade": true, "grade_id": "memory", ...}``). It reads as a
diff in review, and it opens as a notebook in JupyterLab: ``source/jupytext.toml`` pairs the two
files, so saving in Jupyter (``./lab jupyter``, jupytext is installed with the course) writes both.
After editing either file, run this script: it rewrites the .ipynb from the .py and

* gives every cell a **stable id**: the nbgrader ``grade_id`` where the cell has one, otherwise
  one derived from the cell's first line, so inserting or moving cells renames nothing else;
* drops outputs and execution counts (the source notebook carries none);
* refuses a grade cell whose points differ from its exercise's checks, or a graded exercise
  with no grade cell (``grader/checks`` declares the exercises; see ``grader/contract.py``).

Solution regions sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; nbgrader's
``generate_assignment`` replaces them with stubs. ``lab321.py`` is never released to students
(``course_config.py`` ignores it), and a test checks that the pair is in sync.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from grader.contract import notebook_grade_cells, problems  # noqa: E402

SRC = HERE / "lab321" / "lab321.py"
OUT = HERE / "lab321" / "lab321.ipynb"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def cell_id(cell, taken: set[str]) -> str:
    """The grade_id, or the cell kind plus a hash of its first non-blank line (unique in the notebook)."""
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if gid:
        base = re.sub(r"[^A-Za-z0-9_-]", "-", gid)[:64]
    else:
        first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
        kind = "md" if cell.cell_type == "markdown" else cell.cell_type
        base = f"{kind}-{hashlib.sha1(first.encode()).hexdigest()[:8]}"
    ident, n = base, 1
    while ident in taken:
        n += 1
        ident = f"{base}-{n}"
    taken.add(ident)
    return ident


def build(text: str | None = None) -> nbformat.NotebookNode:
    nb = jupytext.reads(SRC.read_text() if text is None else text, fmt="py:percent")
    bad = problems(notebook_grade_cells(nb))
    if bad:
        raise SystemExit(f"{SRC.name}: the notebook does not match the exercise contract:\n  " + "\n  ".join(bad))
    out = nbformat.v4.new_notebook()
    out.metadata = {"kernelspec": nb.metadata.get("kernelspec", KERNELSPEC), "language_info": {"name": "python"}}
    taken: set[str] = set()
    for c in nb.cells:
        meta = {k: v for k, v in c.metadata.items() if k == "nbgrader"}
        if c.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(c.source, metadata=meta)
        elif c.cell_type == "code":
            new = nbformat.v4.new_code_cell(c.source, metadata=meta)
        else:
            new = nbformat.v4.new_raw_cell(c.source, metadata=meta)
        new["id"] = cell_id(new, taken)
        out.cells.append(new)
    nbformat.validate(out)
    return out


def main() -> None:
    text = nbformat.writes(build())
    if "--check" in sys.argv:
        same = OUT.exists() and OUT.read_text() == text
        print("up to date" if same else
              f"{OUT} is out of sync with {SRC.name}: run .venv/bin/python source/build_lab.py")
        sys.exit(0 if same else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
