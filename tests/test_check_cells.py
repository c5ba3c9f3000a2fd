"""The notebook's check cells run the grader's public checks (grader/grading/local.py), nothing weaker and
nothing hidden, and fall back to a one-line hint where the course package cannot be imported."""

from __future__ import annotations

import contextlib
import io
import sys

import pytest

from grader.course import demo
from labs.lab321 import LAB

CHECKS, CONTRACT = LAB.exercises.checks, LAB.exercises.contract
from grader.grading.local import NamespaceStudent, run_public
from helpers import LocalStudent, local_scores, solution_cells

FALLBACK = "Public checks not run in this kernel"


def _grade_cells() -> dict[str, str]:
    return {gid: src for gid, src in solution_cells() if gid in CONTRACT}


def _run(exercise: str, ns: dict) -> tuple[str, BaseException | None]:
    out = io.StringIO()
    err = None
    with contextlib.redirect_stdout(out):
        try:
            run_public(exercise, ns)
        except AssertionError as exc:
            err = exc
    return out.getvalue(), err


def test_every_grade_cell_runs_its_exercise_public_checks():
    cells = _grade_cells()
    assert set(cells) == set(CONTRACT)
    for gid, src in cells.items():
        assert f'run_public("{gid}", globals())' in src, gid
        assert "assert " not in src, f"{gid}: hand-written asserts instead of the public checks"


def test_model_solution_passes_every_public_check_and_no_hidden_check_runs(monkeypatch):
    ns = LocalStudent().ns
    ran = []
    import grader.grading.grade as grade

    real = grade.run_check
    monkeypatch.setattr(grade, "run_check", lambda s, c, seed: ran.append(c) or real(s, c, seed))
    for ex in CONTRACT:
        text, err = _run(ex, ns)
        assert err is None, text
        public = [c.name for c in CHECKS if c.exercise == ex and not c.hidden]
        assert [line.split()[1] for line in text.splitlines() if line.startswith("[PASS]")] == public
        assert f"public checks {CONTRACT[ex].public_points:g} / {CONTRACT[ex].public_points:g} points" in text
    assert ran and not any(c.hidden for c in ran)


@pytest.mark.parametrize("mistake", ["memory_gib", "snr_20log10", "advisor_fp4_training"])
def test_a_mistake_fails_the_check_cell_with_the_graders_public_message(mistake):
    student = LocalStudent(LAB.mistakes[mistake][1](demo.solution_sources("lab321")))
    _, failed = local_scores(student, "any seed")
    ex = next(c.exercise for c in CHECKS if c.name in failed)
    text, err = _run(ex, student.ns)
    assert isinstance(err, AssertionError)
    public_failed = [c.name for c in CHECKS if c.exercise == ex and not c.hidden and c.name in failed]
    assert public_failed
    for name in public_failed:
        line = next(line for line in text.splitlines() if f" {name} " in line)
        assert line.startswith("[FAIL]") and failed[name] in line, (line, failed[name])


def test_check_cell_without_the_course_package_prints_how_to_self_check(monkeypatch):
    monkeypatch.setitem(sys.modules, "grader.grading.local", None)  # import raises ImportError
    ns = dict(LocalStudent().ns)
    for gid, src in _grade_cells().items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(src, f"<cell {gid}>", "exec"), ns)
        assert out.getvalue().startswith(FALLBACK) and "pytest lab321.ipynb" in out.getvalue(), gid


def test_namespace_student_answers_like_the_sandbox():
    from grader.sandbox import StudentError

    s = NamespaceStudent({"f": lambda x: {"v": x.sum()}, "BEST": "int8"})
    import torch
    got = s.call("f", torch.ones(3))
    assert got == {"v": 3.0} and isinstance(got["v"], float)  # a 0-d tensor crosses as a float
    assert s.get("BEST") == "int8"
    for fn in (lambda: s.call("missing"), lambda: s.get("missing")):
        with pytest.raises(StudentError) as e:
            fn()
        assert e.value.kind == "NameError" and not e.value.from_student


def test_in_the_grading_sandbox_check_cells_print_the_hint_and_scores_are_unchanged():
    """grader/ is masked in the sandbox: the check cells print the hint (no error, no stderr), and the
    trusted scores are the full marks they were."""
    from grader.grading.grade import grade_cells
    from helpers import FULL, build

    cells = build()
    report = grade_cells(cells, include_hidden=True, lab="lab321")
    assert {k: e.score for k, e in report.exercises.items()} == FULL
    ids = [gid for gid, _ in solution_cells()]
    for gid in CONTRACT:
        c = report.cells[ids.index(gid)]
        assert c.error is None and not c.stderr, (gid, c)
        assert c.stdout.startswith(FALLBACK), (gid, c.stdout)


def test_syntax_error_names_the_heading_and_first_line_not_a_code_cell_number(tmp_path):
    import nbformat

    from grader.course.selfcheck import syntax_errors

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab\n\nintro"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("## Exercise 2 (graded: `memory`): memory\n\ntext"),
                nbformat.v4.new_code_cell("%matplotlib inline\nimport math"),
                nbformat.v4.new_code_cell("\n# sizes\ndef f(:\n    pass")]
    path = tmp_path / "lab321.ipynb"
    nbformat.write(nb, path)
    assert syntax_errors(path) == ['SYNTAX ERROR in the code cell starting "# sizes" under "Exercise 2 (graded: '
                                   '`memory`): memory" (line 3): invalid syntax']


def test_check_cells_print_no_blank_line():
    """Each check cell prints its check lines and its summary, and no empty line."""
    ns = LocalStudent().ns
    for gid, src in _grade_cells().items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(src, f"<cell {gid}>", "exec"), dict(ns))
        assert out.getvalue().endswith("\n") and "" not in out.getvalue()[:-1].split("\n"), (gid, out.getvalue())
