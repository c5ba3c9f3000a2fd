"""A submission is data: no file a student sends runs as the TA when the TA self-checks submissions.

Each planted file writes a marker when Python or pytest runs it: a conftest.py (next to the
notebook and one folder up), a pytest.ini whose addopts load a plugin from the submission (and
write a JUnit file), sitecustomize.py / usercustomize.py, a .pth file, a test_*.py and a
course_config.py. No marker may appear, and the command says in one line what it ignored or why
it refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import studentfiles
from grader.course import demo
from helpers import ROOT

LAB = "lab321"
ENV = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
PYTEST = Path(sys.executable).parent / "pytest"


def _plant(folder: Path, marks: Path, *, ini: str) -> None:
    """The files a hostile student adds next to the notebook; each writes marks/<what> when run."""
    def writer(what: str) -> str:
        return f"open({str(marks / what)!r}, 'w').write('ran as ' + __import__('getpass').getuser())\n"

    (folder / "conftest.py").write_text(writer("conftest"))
    (folder.parent / "conftest.py").write_text(writer("conftest-above"))
    (folder / "evilplug.py").write_text(writer("plugin"))
    (folder / "sitecustomize.py").write_text(writer("sitecustomize"))
    (folder / "usercustomize.py").write_text(writer("usercustomize"))
    (folder / "evil.pth").write_text("import os; " + writer("pth"))
    (folder / "test_evil.py").write_text(writer("test-module") + "def test_x():\n    pass\n")
    (folder / "course_config.py").write_text(writer("course-config") + "c = get_config()\n")
    (folder / "pytest.ini").write_text(ini.format(junit=marks / "junit.xml"))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    demo.copy_course(root)
    marks = tmp_path_factory.mktemp("marks")
    release = ROOT / "assignments" / LAB / f"{LAB}.ipynb"
    for sid in ("honest", "evil", "evil_ini"):
        demo.write_submission(release, root / "submitted" / sid / LAB / f"{LAB}.ipynb", demo.solution_sources("lab321"))
    # a plugin loaded by addopts from the submission itself, as pytest would find it
    _plant(root / "submitted" / "evil" / LAB, marks,
           ini="[pytest]\naddopts = -p evilplug --junitxml={junit}\npythonpath = .\n")
    # no plugin (so pytest gets as far as the self-check), only options that write where the student says
    _plant(root / "submitted" / "evil_ini" / LAB, marks, ini="[pytest]\naddopts = --junitxml={junit}\n")
    demo.write_submission(release, root / "autograded" / "evil" / LAB / f"{LAB}.ipynb", demo.solution_sources("lab321"))
    _plant(root / "autograded" / "evil" / LAB, marks, ini="[pytest]\naddopts = -p evilplug\npythonpath = .\n")
    return root, marks


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def _no_marks(marks: Path, r: subprocess.CompletedProcess) -> None:
    ran = sorted(p.name for p in marks.iterdir())
    assert not ran, f"student files ran as the TA: {ran}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


@pytest.mark.slow
def test_lab_check_of_a_submission_ignores_everything_but_the_notebook(course):
    root, marks = course
    r = _run(["bash", ROOT / "lab", "check", f"submitted/evil/{LAB}/{LAB}.ipynb", "--co", "-q"], root)
    _no_marks(marks, r)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    line = next(ln for ln in r.stdout.splitlines() if "self-check: ignored" in ln)
    for name in ("conftest.py", "pytest.ini", "sitecustomize.py", "evil.pth", "test_evil.py", "course_config.py"):
        assert f"submitted/evil/{LAB}/{name}" in line or "more" in line, line
    assert "submitted/evil/conftest.py" in line, "the conftest.py one folder up is a student's too"
    assert f"{LAB}.ipynb::memory::" in r.stdout, "the notebook itself is still checked"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["pytest", "python -m pytest"])
@pytest.mark.parametrize("folder", ["submitted", "autograded"])
def test_pytest_on_a_class_folder_loads_no_student_file(course, folder, how):
    root, marks = course
    cmd = [PYTEST] if how == "pytest" else [sys.executable, "-m", "pytest"]
    r = _run([*cmd, f"{folder}/", "--co", "-q", "-p", "no:cacheprovider"], root)
    _no_marks(marks, r)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "self-check: ignored" in r.stdout and "a submission is data" in r.stdout, r.stdout[-2000:]
    assert f"evil/{LAB}/{LAB}.ipynb::memory::" in r.stdout
    assert "test_evil.py" not in r.stdout.split("self-check: ignored")[0]  # not collected


def test_python_m_pytest_inside_a_submission_refuses(course):
    """`python -m pytest` puts the submission folder on sys.path: the self-check refuses before any conftest."""
    root, marks = course
    (root / "submitted" / "evil_ini" / LAB / "pytest.ini").rename(root / "submitted" / "evil_ini" / LAB / "x.ini")
    try:
        r = _run([sys.executable, "-m", "pytest", f"{LAB}.ipynb", "--co", "-p", "no:cacheprovider"],
                 root / "submitted" / "evil_ini" / LAB)
    finally:
        (root / "submitted" / "evil_ini" / LAB / "x.ini").rename(root / "submitted" / "evil_ini" / LAB / "pytest.ini")
    _no_marks(marks, r)
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    assert "refusing to self-check" in r.stderr and "import path" in r.stderr and "./lab check" in r.stderr, r.stderr


def test_pytest_that_read_a_students_ini_refuses(course):
    root, marks = course
    r = _run([PYTEST, f"submitted/evil_ini/{LAB}/{LAB}.ipynb", "--co", "-p", "no:cacheprovider"], root)
    _no_marks(marks, r)
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"pytest read its settings from submitted/evil_ini/{LAB}/pytest.ini" in r.stderr, r.stderr
    assert "./lab check" in r.stderr


def test_the_course_is_never_found_inside_a_submission(course):
    """A course_config.py a student sent is never loaded as the course's settings."""
    from grader import config
    from grader.course import selfcheck

    root, marks = course
    nb = root / "submitted" / "evil" / LAB / f"{LAB}.ipynb"
    assert selfcheck._course_root(nb) == root
    assert config.find_course_root(nb.parent) == root
    assert not any(marks.iterdir())


def test_submission_folders_and_active_files():
    sf = studentfiles
    assert sf.submission_root("/x/submitted/alice/lab321/lab321.ipynb") == Path("/x/submitted")
    assert sf.submission_root("/x/autograded/alice/lab321") == Path("/x/autograded")
    assert sf.submission_root("/srv/nbgrader/exchange/lab321/inbound/alice+lab321+t/a.ipynb") is not None
    assert sf.submission_root(ROOT / "assignments" / LAB / f"{LAB}.ipynb") is None
    assert sf.submission_root("/home/ta/feedback/notes.txt") is None  # not a course's feedback folder
    for name in ("conftest.py", "sitecustomize.py", "usercustomize.py", "x.pth", "pytest.ini", ".pytest.ini",
                 "tox.ini", "setup.cfg", "pyproject.toml", "course_config.py", "mod.cpython-311-x86_64-linux-gnu.so"):
        assert sf.is_active(name), name
    assert not sf.is_active(f"{LAB}.ipynb") and not sf.is_active("timestamp.txt")


def test_nbgrader_never_copies_a_students_python_or_config():
    """collect, autograde and the exchange copy a submission with c.CourseDirectory.ignore."""
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    ignore = cfg.CourseDirectory.ignore
    assert set(studentfiles.NOT_COPIED) <= set(ignore)
    from nbgrader.utils import ignore_patterns

    names = ["conftest.py", "pytest.ini", "sitecustomize.py", "evil.pth", "setup.cfg", "tox.ini", f"{LAB}.ipynb",
             "timestamp.txt"]
    skipped = ignore_patterns(exclude=ignore)("/c/submitted/alice/lab321", names)
    assert set(skipped) == set(names) - {f"{LAB}.ipynb", "timestamp.txt"}
