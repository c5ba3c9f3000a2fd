"""Build each lab's instructor notebook source/<lab>/<lab>.ipynb from its jupytext source <lab>.py.

    .venv/bin/python source/build_lab.py                 # every lab of the course: <lab>.py -> <lab>.ipynb
    .venv/bin/python source/build_lab.py lab321 labdemo  # only these labs
    .venv/bin/python source/build_lab.py --check         # exit 1 when a pair is out of sync

The course is the folder holding ``course_config.py`` at or above the current folder (``--course DIR``
to name another). A lab is written in ``source/<lab>/<lab>.py`` (next to the notebook its ``LAB``
declares), a jupytext "percent" script: each cell starts
with ``# %%`` (``# %% [markdown]`` for text), and nbgrader's cell metadata sits in the cell's
header as JSON (``# %% nbgrader={"grade": true, "grade_id": "memory", ...}``). It reads as a
diff in review, and it opens as a notebook in JupyterLab: ``source/jupytext.toml`` pairs the two
files, so saving in Jupyter (``./lab jupyter``, jupytext is installed with the course) writes both.
After editing either file, run this script: it rewrites the .ipynb from the .py and

* gives every cell a **stable id**: the nbgrader ``grade_id`` where the cell has one, otherwise
  one derived from the cell's first line, so inserting or moving cells renames nothing else;
* drops outputs and execution counts (the source notebook carries none);
* refuses a grade cell whose points differ from its exercise's checks, or a graded exercise
  with no grade cell (the lab's checks declare the exercises; see ``grader/grading/contract.py``).

Solution regions sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; nbgrader's
``generate_assignment`` replaces them with stubs. ``<lab>.py`` is never released to students
(``course_config.py`` ignores every .py of source/), and a test checks that the pair is in sync.
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
from grader.config import find_course_root  # noqa: E402
from grader.grading.contract import notebook_grade_cells, problems  # noqa: E402
from grader.grading.labs import all_labs, get_lab  # noqa: E402

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


def paths(lab_id: str = "lab321", course: Path | None = None) -> tuple[Path, Path]:
    """(jupytext source, instructor notebook) of a lab of the course."""
    root = Path(course) if course else find_course_root()
    out = get_lab(lab_id, root).model_solution(root)
    return out.with_suffix(".py"), out


def build(text: str | None = None, lab_id: str = "lab321", course: Path | None = None) -> nbformat.NotebookNode:
    src, _ = paths(lab_id, course)
    nb = jupytext.reads(src.read_text() if text is None else text, fmt="py:percent")
    bad = problems(notebook_grade_cells(nb), get_lab(lab_id, Path(course) if course else find_course_root()))
    if bad:
        raise SystemExit(f"{src.name}: the notebook does not match lab {lab_id!r}'s exercise contract:\n  "
                         + "\n  ".join(bad))
    out = nbformat.v4.new_notebook()
    out.metadata = {"kernelspec": nb.metadata.get("kernelspec", KERNELSPEC), "language_info": {"name": "python"}}
    taken: set[str] = set()
    for c in nb.cells:
        meta = {k: v for k, v in c.metadata.items() if k in ("nbgrader", "tags")}  # tags: e.g. "teaching"
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


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="build_lab.py", description="build source/<lab>/<lab>.ipynb from <lab>.py")
    p.add_argument("labs", nargs="*", help="lab ids (default: every lab of the course with a jupytext source)")
    p.add_argument("--check", action="store_true", help="exit 1 when a notebook is out of sync with its source")
    p.add_argument("--course", help="the course folder (default: the one holding course_config.py, from cwd)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(a.course).resolve() if a.course else find_course_root()
    ids = a.labs or [i for i, lab in all_labs(root).items() if lab.model_solution(root).with_suffix(".py").is_file()]
    stale = 0
    for lab_id in ids:
        src, out = paths(lab_id, root)
        text = nbformat.writes(build(lab_id=lab_id, course=root))
        if a.check:
            same = out.exists() and out.read_text() == text
            stale += not same
            print(f"{lab_id}: up to date" if same else
                  f"{out} is out of sync with {src.name}: run .venv/bin/python source/build_lab.py {lab_id}")
            continue
        out.write_text(text)
        print(f"wrote {out}")
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
