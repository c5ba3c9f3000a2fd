"""Two labs in one course: a second lab added by following the "Add a lab" steps (docs/architecture.md) word for word.

The steps' files and commands are read from docs/architecture.md itself, written into a copy of the course, and
then nbgrader generates, autogrades and gives feedback for both labs: each notebook is graded by its own
lab's checks, canary and seed; the Canvas and per-check exports and the class report cover both; and
adding the lab changed no file of the framework.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_steps() -> tuple[dict[str, str], list[str]]:
    """({path: text} of the files, [commands]) of docs/architecture.md's "Add a lab" section, in order."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("\n## Add a lab\n", 1)[1].split("\n## ", 1)[0]
    files, commands = {}, []
    for m in re.finditer(r"`([\w/.]+)`[^`\n]*:\n\n```(\w+)\n(.*?)```", section, re.S):
        path, lang, body = m.groups()
        if lang == "bash":
            commands += [line for line in body.splitlines() if line.strip()]
        else:
            files[path] = body
    for m in re.finditer(r"```bash\n(.*?)```", section, re.S):
        commands += [line for line in m.group(1).splitlines() if line.strip() and line not in commands]
    return files, commands


def run(course: Path, cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def shell(course: Path, line: str) -> subprocess.CompletedProcess:
    words = line.split()
    if words[0] == "python":
        return run(course, [sys.executable, *words[1:]])
    if words[0] == "nbgrader":
        return run(course, [sys.executable, "-m", "nbgrader", *words[1:]])
    raise AssertionError(f"README step {line!r}: not a python or nbgrader command")


def framework_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    before = framework_status()
    course = tmp_path_factory.mktemp("two-labs")
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(ROOT / name, course / name)
    shutil.copytree(ROOT / "source", course / "source", ignore=shutil.ignore_patterns("__pycache__", "*.ipynb_checkpoints"))
    files, commands = readme_steps()
    assert set(files) == {"labs/labdemo/checks.py", "labs/labdemo/__init__.py", "source/labdemo/labdemo.py"}, files
    assert commands == ["python source/build_lab.py labdemo", "nbgrader generate_assignment labdemo --force"], commands
    for path, text in files.items():
        (course / path).parent.mkdir(parents=True, exist_ok=True)
        (course / path).write_text(text)
    for line in commands:
        shell(course, line)
    shell(course, "nbgrader generate_assignment lab321 --force")

    from grader.course import demo

    lab321_model = demo.solution_sources("lab321")
    release = {lab: course / "assignments" / lab / f"{lab}.ipynb" for lab in ("lab321", "labdemo")}
    demo.write_submission(release["lab321"], course / "submitted" / "alice" / "lab321" / "lab321.ipynb", lab321_model)
    demo.write_submission(release["lab321"], course / "submitted" / "bob" / "lab321" / "lab321.ipynb", None)
    nb = nbformat.read(release["labdemo"], as_version=4)
    for who, body in (("alice", "def double(x):\n    return x * 2\n"), ("bob", "def double(x):\n    return 4\n")):
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade_id") == "double_solution":
                c.source = body
        dest = course / "submitted" / who / "labdemo" / "labdemo.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
    logs = {}
    for lab in ("lab321", "labdemo"):
        r = shell(course, f"nbgrader autograde {lab} --force")
        logs[lab] = r.stdout + r.stderr
        shell(course, f"nbgrader generate_feedback {lab} --force")
    return {"path": course, "logs": logs, "framework_before": before}


def scores(course: Path, lab: str) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sid in ("alice", "bob"):
            nb = gb.find_submission_notebook(lab, lab, sid)
            out[sid] = {g.name: float(g.auto_score or 0.0) for g in nb.grades if g.max_score > 0}
    return out


def test_each_notebook_is_graded_by_its_own_labs_checks(course):
    from labs.lab321 import LAB

    full = LAB.exercises.full_marks()
    s321, sdemo = scores(course["path"], "lab321"), scores(course["path"], "labdemo")
    assert s321["alice"] == full and set(s321["bob"]) == set(full) and sum(s321["bob"].values()) == 0
    assert sdemo == {"alice": {"double": 3.0}, "bob": {"double": 1.0}}  # bob returns 4: public passes, hidden fails
    rec = json.loads((course["path"] / "autograded" / "bob" / "labdemo" / "labdemo.checks.json").read_text())
    assert [c["name"] for e in rec["exercises"].values() for c in e["checks"]] == ["double_two", "double_random"]
    rec = json.loads((course["path"] / "autograded" / "alice" / "lab321" / "lab321.checks.json").read_text())
    assert set(rec["exercises"]) == set(full)


def test_each_lab_runs_its_own_canary(course):
    assert "canary: model solution 28 / 28" in course["logs"]["lab321"], course["logs"]["lab321"][-2000:]
    assert "canary: model solution 3 / 3" in course["logs"]["labdemo"], course["logs"]["labdemo"][-2000:]


def test_hidden_inputs_derive_from_the_lab_id():
    from grader.grading.checks import Check, rng_for

    def draw(lab):
        return rng_for("seed", Check("double", "double_random", 2, True, "", lambda s, r: None, lab)).integers(1 << 30)
    assert draw("labdemo") != draw("labother") and draw("labdemo") == draw("labdemo")


def test_feedback_exports_and_report_cover_both_labs(course):
    c = course["path"]
    assert (c / "feedback" / "bob" / "labdemo" / "labdemo.html").is_file()
    assert (c / "feedback" / "alice" / "lab321" / "lab321.html").is_file()
    shell(c, "nbgrader export --exporter=grader.course.lms.CanvasExport --to canvas.csv")
    rows = list(csv.reader((c / "canvas.csv").open()))
    assert {"lab321", "labdemo"} <= set(rows[0]), rows[0]
    shell(c, "nbgrader export --exporter=grader.course.lms.ChecksExport --to checks.csv")
    checks = list(csv.DictReader((c / "checks.csv").open()))
    assert {r["assignment"] for r in checks} == {"lab321", "labdemo"}
    assert {r["check"] for r in checks if r["assignment"] == "labdemo"} == {"double_two", "double_random"}
    for lab in ("lab321", "labdemo"):
        shell(c, f"python -m grader report {lab} --no-canary")
        table = list(csv.DictReader((c / "reports" / lab / "checks.csv").open()))
        assert {r["assignment"] for r in table} == {lab} and len({r["student"] for r in table}) == 2


def test_adding_the_lab_changed_no_file_of_the_framework(course):
    assert framework_status() == course["framework_before"]
