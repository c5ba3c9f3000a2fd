"""The course's commands hold up through a term: one student's broken submission is that student's
warning, a refused release keeps the previous one, the formgrader needs no activated venv, the
config command shows the course's values, and a normal autograde prints nothing a TA cannot act on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.course import demo
from helpers import FULL, ROOT

LAB = "lab321"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", ""), "LAB_GRADER_JOBS": "2"}
# what a TA cannot act on: nbgrader's SQLAlchemy autoflush warnings, ipykernel's transport warning,
# traitlets' complaint about the HTML exporter's display_data_priority
NOISE = ("SAWarning", "Kernel is running over TCP without encryption", "display_data_priority", "Traceback")
PLANTED = ("conftest.py", "pytest.ini", "sitecustomize.py", "evil.pth", "setup.cfg")


def nbg(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env or ENV, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Generated assignment; students: a model solution, one with Python and config files planted next to
    the notebook, one with the notebook renamed, one with an unreadable notebook. Autograded twice."""
    root = tmp_path_factory.mktemp("course")
    demo.copy_course(root)
    r = nbg(root, "generate_assignment", LAB, "--force")
    assert r.returncode == 0, r.stderr[-3000:]
    release = root / "assignments" / LAB / f"{LAB}.ipynb"
    sub = root / "submitted"
    demo.write_submission(release, sub / "model" / LAB / f"{LAB}.ipynb", demo.solution_sources("lab321"))
    demo.write_submission(release, sub / "planted" / LAB / f"{LAB}.ipynb", demo.solution_sources("lab321"))
    for name in PLANTED:
        (sub / "planted" / LAB / name).write_text(f"open({str(root / 'RAN')!r}, 'w')\n")
    demo.write_submission(release, sub / "renamed" / LAB / "my_lab.ipynb", demo.solution_sources("lab321"))
    (sub / "unreadable" / LAB).mkdir(parents=True)
    (sub / "unreadable" / LAB / f"{LAB}.ipynb").write_text("not a notebook")
    first = nbg(root, "autograde", LAB, "--force")
    second = nbg(root, "autograde", LAB)
    feedback = nbg(root, "generate_feedback", LAB, "--force")
    return root, first, second, feedback


def test_a_renamed_or_unreadable_notebook_is_a_warning_for_that_student_only(course):
    root, first, second, _ = course
    for r in (first, second):
        assert r.returncode == 0, r.stderr[-3000:]
        assert "renamed: no gradable notebook (renamed): found 'my_lab.ipynb', expected 'lab321.ipynb'" in r.stderr
        assert "unreadable: no gradable notebook (unreadable)" in r.stderr
        assert "No notebooks found" not in r.stderr and "There was an error" not in r.stderr, r.stderr[-3000:]
    book = demo.gradebook_scores(root, "lab321")
    assert book["model"] == FULL and book["planted"] == FULL
    assert "renamed" not in book and "unreadable" not in book  # on the roster, not a graded 0
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert {"renamed", "unreadable"} <= {s.id for s in gb.students}
    # renamed, it is graded by the next run, and the others are not graded again
    folder = root / "submitted" / "renamed" / LAB
    (folder / "my_lab.ipynb").rename(folder / f"{LAB}.ipynb")
    try:
        r = nbg(root, "autograde", LAB, "--student", "renamed")
        assert r.returncode == 0, r.stderr[-3000:]
        assert demo.gradebook_scores(root, "lab321")["renamed"] == FULL
    finally:
        (folder / f"{LAB}.ipynb").rename(folder / "my_lab.ipynb")


def test_autograde_copies_no_python_or_config_a_student_sent(course):
    root = course[0]
    kept = sorted(p.name for p in (root / "autograded" / "planted" / LAB).iterdir())
    assert f"{LAB}.ipynb" in kept and not set(PLANTED) & set(kept), kept
    assert not (root / "RAN").exists()


def test_a_normal_autograde_and_feedback_print_nothing_a_ta_cannot_act_on(course):
    _, first, second, feedback = course
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    for r in (first, second, feedback):
        for noise in NOISE:
            assert noise not in r.stderr, (noise, r.stderr[-3000:])


def _set_points(path: Path, grade_id: str, points: float) -> None:
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("grade") and meta.get("grade_id") == grade_id:
            meta["points"] = points
    nbformat.write(nb, path)


def test_a_refused_generate_assignment_leaves_the_previous_release(course):
    root = course[0]
    source = root / "source" / LAB / f"{LAB}.ipynb"
    release = root / "assignments" / LAB / f"{LAB}.ipynb"
    before_source, before_release = source.read_bytes(), release.read_bytes()
    from labs.lab321 import LAB as LAB321

    CONTRACT = LAB321.exercises.contract

    worth = CONTRACT["memory"].points
    _set_points(source, "memory", worth - 1)
    try:
        r = nbg(root, "generate_assignment", LAB, "--force")
    finally:
        source.write_bytes(before_source)
    assert r.returncode == 1, r.stderr[-3000:]
    assert f"grade cell 'memory' is worth {worth - 1:g} points but its checks give {worth:g}" in r.stderr
    assert f"previous release in assignments/{LAB}/ is unchanged" in r.stderr, r.stderr[-3000:]
    assert "Removing existing assignment" not in r.stderr
    assert release.read_bytes() == before_release


def test_gradebook_is_created_when_started_by_full_path_without_the_venv_on_path(tmp_path):
    """nbgrader runs `alembic` by name when it creates a gradebook: `.venv/bin/jupyter lab` (a JupyterHub
    spawner, a systemd unit) and `.venv/bin/nbgrader` have no activated venv."""
    demo.copy_course(tmp_path)
    bare = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    assert all(not (Path(d) / "alembic").exists() for d in bare["PATH"].split(":")), "alembic must not be on PATH"
    r = subprocess.run([str(BIN / "nbgrader"), "db", "student", "add", "alice"], cwd=tmp_path, env=bare,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "alembic" not in r.stderr, r.stderr[-3000:]
    # the formgrader's own path: nbgrader's config loading, then its API's gradebook
    (tmp_path / "gradebook.db").unlink()
    code = ("from nbgrader.apps.baseapp import NbGrader\n"
            "from nbgrader.apps.api import NbGraderAPI\n"
            "app = NbGrader(); app.load_config_file()\n"
            "api = NbGraderAPI(app.coursedir, parent=app)\n"
            "with api.gradebook as gb: print('students', len(gb.students))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=bare, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "students 0" in r.stdout, r.stderr[-3000:]


def test_config_command_shows_the_course_values_next_to_the_defaults(tmp_path):
    from grader import config

    seed = config.lab_grader(ROOT).hidden_seed
    assert seed != config.LabGrader.hidden_seed.default_value
    r = subprocess.run([sys.executable, "-m", "grader", "config"], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"hidden_seed = {seed!r}  (default: 'lab321')" in r.stdout, r.stdout
    assert re.search(r"^  call_timeout = 10\.0  \(the default\)$", r.stdout, re.M)
    assert "LabLatePenalty" in r.stdout and f"course: {ROOT} (settings from course_config.py)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "grader", "config", "--course", str(tmp_path)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert "hidden_seed = 'lab321'  (the default)" in r.stdout, r.stdout
