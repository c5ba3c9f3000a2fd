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
    "def f(x: TABLE) -> int:\n    return 1",  # annotations are evaluated at definition
    "for k in []:\n    TABLE = 1\nelse:\n    print(TABLE)",  # an empty loop binds nothing before its else
    "import sys\nx = getattr(sys.modules[__name__], 'TAB' + 'LE')",
    "import builtins\nx = builtins.eval('TABLE')",
    "import IPython\nx = IPython.get_ipython().ev('TABLE')",
    "x = dir()",
    "x = df.query('@TABLE > 1')",
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

    def warm(stop):
        calls.append(threading.current_thread().name)
        done.set()
        stop.wait(10)  # a long warm returns once the run ends

    def registry(lab_id):
        r = Registry(lab_id)
        r.exercise("one", "Exercise 1", order=1)
        r.check("one", "one_public", points=1, what="one", hidden=False)(lambda student, rng: None)
        return r

    lab = Lab(id="warmdemo", title="warm", exercises=registry("warmdemo"), warm=warm)
    cleanups = []

    class Config:
        def add_cleanup(self, fn):
            cleanups.append(fn)

    selfcheck._warm_references(lab, Config())
    selfcheck._warm_references(lab, Config())
    assert done.wait(10)
    assert calls == ["self-check-warm-warmdemo"]  # once, in its own thread
    assert len(cleanups) == 1
    cleanups[0]()  # the end of the run: told to stop and joined, never left running at exit
    assert not [t for t in threading.enumerate() if t.name == "self-check-warm-warmdemo"]
    selfcheck._warm_references(Lab(id="coldemo", title="cold", exercises=registry("coldemo")), Config())  # no warm: nothing


def test_a_function_body_reads_the_modules_names_when_it_is_called_after_every_cell():
    # `fmt` is bound above the def, but the body reads it at call time: after a teaching cell rebinds it.
    loop = "for fmt in ('bf16', 'fp8'):\n    print(fmt)"
    student = "fmt = 'int8'\ndef w8a8():\n    return fmt\nlam = lambda: fmt"
    assert left_out([loop, student], T(loop)) == set()
    inner = "def outer():\n    f = lambda: (ax := 1)\n    return ax"  # ax is not outer's local: the walrus is the lambda's
    assert left_out([PLOT, inner], T(PLOT)) == set()


def test_any_code_is_analysed_or_runs_every_cell():
    deep = "s = ' x '\ny = s" + ".strip()" * 400  # deeper than the visitors' recursion allows
    assert without_teaching([TABLE, deep], T(TABLE)) == [TABLE, deep]  # it runs as written, nothing raises
    flat = "\n".join(f"v{i} = {i}" for i in range(40_000))
    assert left_out([TABLE, flat], T(TABLE)) == {0}  # (benchmark: the analysis is linear, not quadratic)
    huge = "x = 1\n" * (teaching.MAX_ANALYSED // 6 + 1)
    assert without_teaching([TABLE, huge], T(TABLE)) == [TABLE, huge]  # too large to analyse: every cell runs


def _fingerprint(value, depth: int = 0):
    """What a later cell could observe of a value: tensors and arrays by content, containers by items."""
    import hashlib

    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1)
        return ("tensor", tuple(value.shape), str(data.dtype), hashlib.sha1(data.view(torch.uint8).numpy().tobytes()
                                                                           if data.numel() else b"").hexdigest())
    if isinstance(value, np.ndarray):
        return ("array", value.shape, str(value.dtype), hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest())
    if isinstance(value, (int, float, complex, str, bytes, bool, type(None))):
        return repr(value)
    if depth > 6:
        return type(value).__name__
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), _fingerprint(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_fingerprint(v, depth + 1) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(map(repr, value))))
    return type(value).__name__  # functions, modules, classes: their identity is the cells' that define them


def _run_in_process(cells: list[str]) -> dict:
    """The cells in one namespace, as a kernel would run them (check cells' course import blocked, Agg)."""
    import contextlib
    import io
    import sys

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from IPython.core.inputtransformer2 import TransformerManager

    tm, ns = TransformerManager(), {"__name__": "__main__"}
    saved = sys.modules.get("grader.grading.local")
    sys.modules["grader.grading.local"] = None  # the check cells print "not run here", as in the sandbox
    torch.manual_seed(0), np.random.seed(0)
    try:
        for src in cells:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    exec(compile(tm.transform_cell(src), "<cell>", "exec"), ns)
                except Exception:  # noqa: BLE001 - a cell that raises does in the sandbox too
                    pass
    finally:
        sys.modules["grader.grading.local"] = saved
        plt.close("all")
    ns["<torch rng>"] = torch.random.get_rng_state()
    ns["<numpy rng>"] = np.random.get_state()[1]
    return ns


@pytest.mark.slow
@pytest.mark.parametrize("lab", ["lab321", "lab322"])
def test_each_labs_teaching_cells_change_no_state_another_cell_sees(lab):
    # The rule the static analysis cannot check: run the lab's notebook with and without its teaching cells;
    # every global the teaching cells do not bind (and the global random generators) must be the same.
    from grader.grading.labs import get_lab
    from grader.grading.nbfile import read_cells

    found = teaching.for_lab(get_lab(lab), ROOT)
    cells = read_cells(ROOT / "source" / lab / f"{lab}.ipynb")
    skipped = left_out(cells, found)
    assert skipped, "the lab has teaching cells"
    theirs = set().union(*(teaching.binds(teaching._parse(cells[i])) for i in skipped))
    full, again, graded = _run_in_process(cells), _run_in_process(cells), _run_in_process(without_teaching(cells, found))

    def fp(ns, k):
        return _fingerprint(ns.get(k, "<missing>"))

    unsteady = {k for k in set(full) | set(again) if fp(full, k) != fp(again, k)}  # clock readings
    changed = sorted(k for k in set(full) | set(graded) if k not in theirs | unsteady and not k.startswith("_")
                     and fp(full, k) != fp(graded, k))
    assert not changed, f"teaching cells of {lab} change state other cells see: {changed}"
