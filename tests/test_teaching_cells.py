"""Teaching cells (grader/grading/teaching.py): a lab's cells that only show something are left out when
grading and self-checking, never when a cell that runs needs them, and never change a grade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.grading import teaching
from grader.grading.teaching import LEFT_OUT, left_out, without_teaching

ROOT = Path(__file__).resolve().parent.parent
TABLE = "TABLE = {s: s * 2 for s in 'ab'}\nprint(TABLE)"
PLOT = "fig, ax = plt.subplots()\nax.plot([1, 2])"


def T(*cells: str, lab_cells=()) -> teaching.Teaching:
    n = teaching._normal
    return teaching.Teaching(frozenset(n(c) for c in cells), frozenset(n(c) for c in (*cells, *lab_cells)))


def test_a_teaching_cell_nothing_reads_is_left_out_in_place():
    cells = ["import math", TABLE, "def f(x):\n    return math.sqrt(x)"]
    assert without_teaching(cells, T(TABLE)) == ["import math", LEFT_OUT, cells[2]]


def test_a_cell_that_reads_its_name_keeps_it_even_inside_a_function_called_later():
    cells = [TABLE, "def f(k):\n    return TABLE[k]"]
    assert left_out(cells, T(TABLE)) == set()


@pytest.mark.parametrize("reader", [
    "x = globals()['TABLE']",
    "x = eval('TAB' + 'LE')",  # any dynamic access keeps every teaching cell
    "import sys\nx = sys.modules['__main__'].TABLE",
    "x = vars()['TABLE']",
    "x = get_ipython().user_ns['TABLE']",
    "%timeit len(TABLE)",
    "x = [TABLE for _ in range(2)]",
    "x = lambda: TABLE",
    "TABLE['c'] = 1",
    "TABLE += 1",
    "del TABLE",
    "from __main__ import TABLE",
    "%run other_notebook.py",
    "%store -r",
    "!echo $TABLE",
])
def test_dynamic_or_indirect_reads_keep_the_cell(reader):
    assert left_out([TABLE, reader], T(TABLE)) == set()


def test_names_a_cell_binds_before_reading_are_its_own():
    cells = [TABLE, PLOT, "t = 3\nfor s in range(t):\n    print(s)\nfig = 1\nprint(fig, [ax for ax in range(2)])"]
    assert left_out(cells, T(TABLE, PLOT)) == {0, 1}


def test_a_teaching_cell_read_by_a_kept_teaching_cell_is_kept_too():
    first, second = "A = 1", "B = A + 1"
    assert left_out([first, second, "print(B)"], T(first, second)) == set()
    assert left_out([first, second, "print(1)"], T(first, second)) == {0, 1}


def test_only_the_labs_own_source_is_left_out():
    changed = TABLE + "\nSTOLEN = 1"
    assert left_out([changed], T(TABLE)) == set()
    assert left_out([TABLE.replace("\n", "  \r\n") + "\n\n"], T(TABLE)) == {0}  # whitespace alone is the same


def test_a_cell_that_does_not_parse_reads_nothing_and_star_imports_are_kept():
    assert left_out([TABLE, "def broken(:\n    TABLE"], T(TABLE)) == {0}
    star = "from math import *"
    assert left_out([star, "print(pi)"], T(star)) == set()


def test_tags_come_from_the_labs_notebook_not_the_submission(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["teaching"]}, "source": [TABLE]},
                    {"cell_type": "code", "metadata": {}, "source": PLOT}], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    path = tmp_path / "lab.ipynb"
    path.write_text(json.dumps(nb))
    assert teaching.teaching_sources(path) == T(TABLE, lab_cells=[PLOT])
    assert teaching.teaching_sources(tmp_path / "missing.ipynb") == teaching.Teaching()


def test_plain_magics_and_shell_lines_read_only_their_words():
    assert left_out([TABLE, "%matplotlib inline\n%timeit len([1])\n!ls -l"], T(TABLE)) == {0}


def test_names_bound_earlier_in_an_enclosing_block_are_the_cells_own():
    cells = [PLOT, "if True:\n    fig, ax = 1, 2\n    print(ax)\nwith open('f') as fh:\n    fig = fh\n    print(fig)"]
    assert left_out(cells, T(PLOT)) == {0}
    cells = [PLOT, "if True:\n    fig = 1\nprint(fig, ax)"]  # bound only inside the if: not surely bound after it
    assert left_out(cells, T(PLOT)) == set()
    cells = [PLOT, "try:\n    pass\nexcept ValueError as ax:\n    print(ax)"]
    assert left_out(cells, T(PLOT)) == {0}


def test_names_local_to_a_comprehension_or_function_are_not_bound_by_the_cell():
    quiet = "SNR = {name: len(w) for name, w in ITEMS}\ndef helper(w):\n    v = w\n    return v"
    cells = ["ITEMS = []", quiet, "w = 3\nprint(w, v)"]  # `v` and `w` are not quiet's globals
    assert left_out(cells, T(quiet)) == {1}
    walrus = "ys = [(last := y) for y in range(3)]"
    assert left_out([walrus, "print(last)"], T(walrus)) == set()
    declared = "def f():\n    global G\n    G = 1\nf()"
    assert left_out([declared, "print(G)"], T(declared)) == set()


def test_the_labs_own_cells_may_pass_globals_a_students_may_not():
    check = "run_public('snr', globals())"
    assert left_out([TABLE, check], T(TABLE, lab_cells=[check])) == {0}
    assert left_out([TABLE, check], T(TABLE)) == set()  # the same line written by a student keeps every cell


# ---- the labs' own teaching cells, graded for real ----------------------------------------------------------


def _model_cells(lab: str, edits=None) -> list[str]:
    import tempfile

    from grader.course import demo
    from grader.grading.nbfile import cells_of_text

    sources = demo.solution_sources(lab)
    if edits:
        sources = edits(dict(sources))
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / f"{lab}.ipynb"
        demo.write_submission(ROOT / "assignments" / lab / f"{lab}.ipynb", dest, sources)
        return cells_of_text(dest.read_text(), str(dest))


def _results(report) -> dict:
    return {c.name: (c.passed, c.points, c.message) for e in report.exercises.values() for c in e.checks}


@pytest.mark.slow
@pytest.mark.parametrize("lab", ["lab321", "lab322"])
def test_each_lab_leaves_out_its_teaching_cells_and_grades_the_same(lab):
    from grader.grading.grade import grade_cells
    from grader.grading.labs import get_lab

    cells = _model_cells(lab)
    found = teaching.for_lab(get_lab(lab), ROOT)
    skipped = left_out(cells, found)
    assert len(skipped) == len(found.cells) >= 5, (sorted(skipped), len(found.cells))  # every tagged cell is left out
    fast, full = grade_cells(cells, lab=lab), grade_cells(cells, lab=lab, run_teaching_cells=True)
    assert fast.total == full.total == full.max_total
    assert _results(fast) == _results(full)


@pytest.mark.slow
def test_a_student_who_uses_a_teaching_cells_name_keeps_full_marks():
    # lab322's plan cell reads TABLE (made by the format table, a teaching cell): the table's cell runs.
    from grader.grading.grade import grade_cells

    def edits(sources):
        sources["plan_solution"] += "\nassert TABLE['int8']['cosine'] < 0.99  # INT8 per-tensor misses the floor\n"
        return sources

    cells = _model_cells("lab322", edits)
    report = grade_cells(cells, lab="lab322")
    assert report.exercises["plan"].score == report.exercises["plan"].max_score, _results(report)
    assert report.total == report.max_total and not report.notes, report.notes


def test_a_notebook_outside_the_course_still_finds_its_labs_teaching_cells(tmp_path):
    # A self-learner's notebook in their own folder: the course settings are the defaults, the lab's cells
    # come from the course its package lies in.
    from grader.grading.labs import get_lab

    assert teaching.for_lab(get_lab("lab322"), tmp_path).cells == teaching.for_lab(get_lab("lab322"), ROOT).cells
    assert len(teaching.for_lab(get_lab("lab322"), tmp_path).cells) >= 5


def test_the_self_check_warms_a_labs_references_once_in_the_background():
    import threading

    from grader.course import selfcheck
    from grader.grading.checks import Registry
    from grader.grading.labs import Lab

    calls, done = [], threading.Event()

    def warm():
        calls.append(threading.current_thread().name)
        done.set()

    def registry(lab_id):
        r = Registry(lab_id)
        r.exercise("one", "Exercise 1", order=1)
        r.check("one", "one_public", points=1, what="one", hidden=False)(lambda student, rng: None)
        return r

    lab = Lab(id="warmdemo", title="warm", exercises=registry("warmdemo"), warm=warm)
    selfcheck._warm_references(lab)
    selfcheck._warm_references(lab)
    assert done.wait(10)
    assert calls == ["self-check-warm-warmdemo"]  # once, in its own thread
    selfcheck._warm_references(Lab(id="coldemo", title="cold", exercises=registry("coldemo")))  # no warm: nothing
