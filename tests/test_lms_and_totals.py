"""Collecting an LMS download never loses a student: real ``nbgrader zip_collect`` runs on Canvas and Moodle
file names (duplicates, same names, late markers, files that belong to no one), and the one final-score rule."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.course import demo
from helpers import ROOT

LAB = "lab321"
DUE = "2026-10-01 12:00:00 UTC"
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def nbg(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=300)


def course(root: Path, *, due: bool = True) -> Path:
    """A course with the released notebook, the assignment in the gradebook and an empty archive folder."""
    demo.copy_course(root)
    release = root / "assignments" / LAB
    release.mkdir(parents=True)
    shutil.copy(ROOT / "assignments" / LAB / f"{LAB}.ipynb", release / f"{LAB}.ipynb")
    r = nbg(root, "db", "assignment", "add", LAB, *([f"--duedate={DUE}"] if due else []))
    assert r.returncode == 0, r.stderr[-2000:]
    (root / "downloaded" / LAB / "archive").mkdir(parents=True)
    return root


def download(root: Path, name: str, files: dict[str, str]) -> None:
    with zipfile.ZipFile(root / "downloaded" / LAB / "archive" / name, "w") as z:
        for entry, text in files.items():
            z.writestr(entry, text)


def collected(root: Path) -> dict[str, str]:
    sub = root / "submitted"
    return {p.parent.parent.name: p.read_text() for p in sorted(sub.glob(f"*/{LAB}/{LAB}.ipynb"))}


def report(root: Path) -> list[dict]:
    return list(csv.DictReader(open(root / "downloaded" / LAB / "collect_report.csv")))


@pytest.mark.slow
def test_canvas_duplicates_same_names_late_marker_and_unmapped_files(tmp_path):
    root = course(tmp_path / "c")
    download(root, "submissions.zip", {
        f"doejane_1234_5001_{LAB}.ipynb": "jane first",  # attached twice: Canvas renames the second "-1"
        f"doejane_1234_5007_{LAB}-1.ipynb": "jane second",
        f"smithjohn_2001_5002_{LAB}.ipynb": "john one",  # two students called John Smith
        f"smithjohn_2002_5003_{LAB}.ipynb": "john two",
        f"lateperson_LATE_3001_5004_{LAB}.ipynb": "late",
        "readme.txt": "not a notebook",
        "mystery.ipynb": "no LMS name",
    })
    r = nbg(root, "zip_collect", LAB)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "No timestamps for comparison" not in r.stderr
    assert collected(root) == {"doejane_1234": "jane second", "lateperson_3001": "late",
                               "smithjohn_2001": "john one", "smithjohn_2002": "john two"}
    # Canvas says LATE but not when: the least lateness it proves, one second after the due date
    assert (root / "submitted" / "lateperson_3001" / LAB / "timestamp.txt").read_text() == "2026-10-01 12:00:01"
    assert not (root / "submitted" / "doejane_1234" / LAB / "timestamp.txt").exists()
    rows = {Path(x["file"]).name: x for x in report(root)}
    assert len(rows) == 7
    old = rows[f"doejane_1234_5001_{LAB}.ipynb"]
    assert old["outcome"] == "superseded" and old["student_id"] == "doejane_1234"
    assert f"doejane_1234_5007_{LAB}-1.ipynb is newer by the LMS's file number (5001 < 5007)" in old["detail"]
    assert rows[f"lateperson_LATE_3001_5004_{LAB}.ipynb"]["timestamp"] == "2026-10-01 12:00:01 UTC"
    assert rows["readme.txt"]["outcome"] == rows["mystery.ipynb"]["outcome"] == "skipped"
    assert "not a Canvas or Moodle download name" in rows["mystery.ipynb"]["detail"]
    assert "not a notebook (.txt)" in rows["readme.txt"]["detail"]
    assert "mystery.ipynb" in r.stderr and "collect_report.csv" in r.stderr
    # the LMS id is kept: the next download maps user 1234 to the same student even under a new name
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert {s.id: s.lms_user_id for s in gb.students} == {"doejane_1234": "1234", "lateperson_3001": "3001",
                                                              "smithjohn_2001": "2001", "smithjohn_2002": "2002"}
    download(root, "submissions.zip", {f"smithjane_1234_5100_{LAB}.ipynb": "jane renamed"})
    r = nbg(root, "zip_collect", LAB, "--force")
    assert r.returncode == 0, r.stderr[-3000:]
    assert collected(root)["doejane_1234"] == "jane renamed" and "smithjane_1234" not in collected(root)


@pytest.mark.slow
def test_late_marker_penalised_by_autograde(tmp_path):
    """The LATE marker's timestamp reaches nbgrader's late penalty (one started day: -10 %)."""
    root = course(tmp_path / "c")
    for args in (("generate_assignment", LAB, "--force"), ("db", "assignment", "add", LAB, f"--duedate={DUE}")):
        assert nbg(root, *args).returncode == 0
    release = root / "assignments" / LAB / f"{LAB}.ipynb"
    text = {}
    for sid in ("a", "b"):
        demo.write_submission(release, tmp_path / f"{sid}.ipynb", demo.submissions("lab321")["model_solution"][1])
        text[sid] = (tmp_path / f"{sid}.ipynb").read_text()
    download(root, "submissions.zip", {f"ontime_11_21_{LAB}.ipynb": text["a"], f"late_LATE_12_22_{LAB}.ipynb": text["b"]})
    assert nbg(root, "zip_collect", LAB).returncode == 0
    r = nbg(root, "autograde", LAB)
    assert r.returncode == 0, r.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        on, late = gb.find_submission(LAB, "ontime_11"), gb.find_submission(LAB, "late_12")
        assert on.score == late.score > 0
        assert (on.late_submission_penalty or 0) == 0
        assert late.late_submission_penalty == pytest.approx(0.1 * late.score)


@pytest.mark.slow
def test_moodle_same_names_folders_and_two_downloads(tmp_path):
    root = course(tmp_path / "m")
    download(root, "batch1.zip", {
        f"Jane Doe_98765_assignsubmission_file_/{LAB}.ipynb": "jane 98765",  # newer Moodle: one folder each
        f"jane doe_98766_assignsubmission_file_{LAB}.ipynb": "jane 98766",  # another student, same name
        f"Jürgen Müller_98767_assignsubmission_file_/{LAB}.ipynb": "juergen",
        f"Jürgen Müller_98767_assignsubmission_onlinetext_/onlinetext.html": "<p>hi</p>",
    })
    download(root, "batch2.zip", {f"Jane Doe_98765_assignsubmission_file_/{LAB}.ipynb": "jane 98765 again"})
    r = nbg(root, "zip_collect", LAB)
    assert r.returncode == 0, r.stderr[-3000:]
    got = collected(root)
    assert set(got) == {"jane_doe_98765", "jane_doe_98766", "jurgen_muller_98767"}
    assert got["jane_doe_98766"] == "jane 98766" and got["jurgen_muller_98767"] == "juergen"
    rows = report(root)
    dup = [x for x in rows if x["student_id"] == "jane_doe_98765"]
    assert sorted(x["outcome"] for x in dup) == ["collected", "superseded"]
    kept = next(x for x in dup if x["outcome"] == "collected")
    assert got["jane_doe_98765"] == ("jane 98765 again" if kept["file"].startswith("batch2") else "jane 98765")
    assert "check which one the student meant" in next(x for x in dup if x["outcome"] == "superseded")["detail"]
    assert any(x["outcome"] == "skipped" and x["file"].endswith("onlinetext.html") for x in rows)


@pytest.mark.slow
def test_unmappable_download_lists_every_file(tmp_path):
    root = course(tmp_path / "u", due=False)
    download(root, "blackboard.zip", {f"Lab 3_jdoe_attempt_2026-10-01-10-00-00_{LAB}.ipynb": "x",
                                      "jdoe_notes.pdf": "y"})
    r = nbg(root, "zip_collect", LAB)
    assert not collected(root)
    rows = report(root)
    assert [x["outcome"] for x in rows] == ["skipped", "skipped"]
    assert "no file of this download could be mapped to a student" in r.stderr


@pytest.mark.slow
def test_late_marker_without_due_date_is_reported(tmp_path):
    root = course(tmp_path / "n", due=False)
    download(root, "submissions.zip", {f"doejane_LATE_1234_5001_{LAB}.ipynb": "x"})
    r = nbg(root, "zip_collect", LAB)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (root / "submitted" / "doejane_1234" / LAB / "timestamp.txt").exists()
    (row,) = report(root)
    assert row["outcome"] == "collected" and "no due date in the gradebook" in row["detail"]
    assert "no due date in the gradebook" in r.stderr


def test_plan_rules():
    from grader.course.lms import CANVAS, MOODLE, parse, plan

    pats = {"canvas": CANVAS, "moodle": MOODLE}
    items = [parse(f, pats, [f"{LAB}.ipynb"]) for f in
             (f"doejane_1234_5_{LAB}.ipynb", f"doejane_LATE_1234_9_{LAB}-1.ipynb", f"smithjohn_77_6_{LAB}.ipynb")]
    due = dt.datetime(2026, 10, 1, 12)
    plan(items, known={"1234": "jdoe"}, due=due, late_offset=dt.timedelta(minutes=5, seconds=1))
    assert [(i.student_id, i.outcome) for i in items] == [("jdoe", "superseded"), ("jdoe", "collected"),
                                                          ("smithjohn_77", "collected")]
    assert items[1].timestamp == due + dt.timedelta(minutes=5, seconds=1) and items[2].timestamp is None
    # a released notebook that itself ends in -1 keeps its name
    assert parse(f"a_1_2_part-1.ipynb", pats, ["part-1.ipynb", "part.ipynb"]).file_id == "part-1.ipynb"
    with pytest.raises(ValueError, match="lms_id"):
        plan([], id_format="{name}")


def test_final_score_is_one_rule():
    from grader.course.late import final_score, record_final

    assert final_score(28, 5.6) == pytest.approx(22.4) and final_score(28, None) == 28
    assert final_score(3, 5) == 0 and final_score(None, 1) is None
    assert record_final({"total": 28, "late": {"penalty": 5.6, "seconds_late": 111600}}) == pytest.approx(22.4)
    assert record_final({"total": 28, "late": None}) == 28
