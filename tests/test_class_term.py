"""A TA's term on a small demo class: grading ahead only what nbgrader processes, progress, per-check
results, late penalty, renamed and unreadable notebooks, class report, LMS exports, the batch command."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.course import demo
from grader.sandbox.text import clean
from helpers import ROOT

LAB = "lab321"
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
       "LAB_GRADER_JOBS": "2"}
ON_TIME = "2026-10-01 11:00:00 UTC"
DUE = "2026-10-01 12:00:00 UTC"
GRADED = ("model_solution", "untouched_stubs", "snr_20log10", "memory_gib")
EVIL = "evil<img src=x onerror=alert(1)>\x1b[31m"  # a folder name a student could choose (batch command)
LATE = "latestudent_1234"  # Canvas: the LMS's user id is part of the student id
RENAMED = "renamedstudent_1235"


def nbg(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=ENV, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    """Generate, collect a Canvas zip, set a due date, autograde the class (one late, one renamed, one unreadable)."""
    root = tmp_path_factory.mktemp("term")
    demo.copy_course(root)
    nbg(root, "generate_assignment", LAB, "--force")
    nbg(root, "db", "assignment", "add", LAB, f"--duedate={DUE}")
    release = root / "assignments" / LAB / f"{LAB}.ipynb"
    subs = demo.submissions("lab321")
    for sid in GRADED:
        demo.write_submission(release, root / "submitted" / sid / LAB / f"{LAB}.ipynb", subs[sid][1])
        (root / "submitted" / sid / LAB / "timestamp.txt").write_text(ON_TIME)
    # two more students arrive as a Canvas download: one late (35 h: 2 started days), one renamed
    tmp = root / "dl"
    demo.write_submission(release, tmp / "a.ipynb", subs["model_solution"][1])
    demo.write_submission(release, tmp / "b.ipynb", subs["model_solution"][1])
    archive = root / "downloaded" / LAB / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as z:
        z.write(tmp / "a.ipynb", f"latestudent_LATE_1234_56789_{LAB}-1.ipynb")
        z.write(tmp / "b.ipynb", f"renamedstudent_1235_56790_{LAB} (1).ipynb")
    r = nbg(root, "zip_collect", LAB)
    assert (root / "submitted" / LATE / LAB / f"{LAB}.ipynb").is_file(), r.stderr[-2000:]
    assert (root / "submitted" / RENAMED / LAB / f"{LAB} (1).ipynb").is_file()
    # Canvas marks it late without a time: due date + 1 s; the TA knows it was 35 h and says so
    assert (root / "submitted" / LATE / LAB / "timestamp.txt").read_text().startswith("2026-10-01 12:00:01")
    (root / "submitted" / LATE / LAB / "timestamp.txt").write_text("2026-10-02 23:00:00 UTC")
    (root / "submitted" / "unreadable" / LAB).mkdir(parents=True)
    (root / "submitted" / "unreadable" / LAB / f"{LAB}.ipynb").write_text("not a notebook\x1b[2J")
    first = nbg(root, "autograde", LAB, "--force", check=False)
    (root / "first.log").write_text(first.stderr)
    return root, first


def book(root: Path) -> dict:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for s in gb.students:
            try:
                sub = gb.find_submission(LAB, s.id)
            except Exception:  # noqa: BLE001
                continue
            nb = gb.find_submission_notebook(LAB, LAB, s.id)
            out[s.id] = {"score": sub.score, "penalty": sub.late_submission_penalty or 0.0,
                         "grades": {g.name: float(g.auto_score or 0.0) for g in nb.grades if g.max_score > 0}}
    return out


def test_first_autograde_has_progress_canary_first_and_warnings(term):
    root, r = term
    log = r.stderr
    # the renamed (no notebook) and the unreadable submission are warnings for those two; the run exits 0
    assert r.returncode == 0 and "There was an error processing" not in log and "Traceback" not in log, log[-3000:]
    assert re.search(r"canary: model solution (\S+) / \1 ", r.stdout), r.stdout
    assert "grading ahead 5 of 5 submission(s)" in log  # the 5 readable under the right name; 2 left out
    progress = [ln for ln in log.splitlines() if ln.startswith("lab-grader: progress:")]
    assert progress[-1].startswith("lab-grader: progress: 7/7 graded"), progress
    recs = [json.loads((root / "autograded" / sid / LAB / f"{LAB}.checks.json").read_text())
            for sid in (*GRADED, LATE)]
    below = sum(r["total"] < r["max_total"] for r in recs)
    assert "2 no gradable notebook" in progress[-1] and f", {below} below full marks" in progress[-1]
    assert "ETA" in progress[0] and "notebooks/s" in progress[0]
    assert f"{RENAMED}: no gradable notebook (renamed): found 'lab321 (1).ipynb'" in log
    assert "unreadable: no gradable notebook (unreadable)" in log
    assert "\x1b[2J" not in log


def test_checks_json_next_to_autograded_notebook_agree_with_gradebook(term):
    root, _ = term
    b = book(root)
    for sid in (*GRADED, LATE):
        rec = json.loads((root / "autograded" / sid / LAB / f"{LAB}.checks.json").read_text())
        assert rec["status"] == "graded" and rec["student"] == sid
        assert {k: e["score"] for k, e in rec["exercises"].items()} == b[sid]["grades"]
        for e in rec["exercises"].values():
            assert e["score"] == sum(c["points"] for c in e["checks"])
            for c in e["checks"]:
                assert c["passed"] == (c["points"] == c["max_points"])
                assert (c["message"] == "passed") == c["passed"]
    rec = json.loads((root / "autograded" / "snr_20log10" / LAB / f"{LAB}.checks.json").read_text())
    failed = {ex for ex, e in rec["exercises"].items() for c in e["checks"] if not c["passed"]}
    assert "snr" in failed  # the SNR mistake fails SNR checks


def test_late_penalty_per_started_day(term):
    root, _ = term
    b = book(root)
    late = b[LATE]
    assert late["score"] > 0 and late["penalty"] == pytest.approx(0.2 * late["score"])  # 35 h: 2 days x 10 %
    assert all(b[sid]["penalty"] == 0 for sid in GRADED)


def test_exports_canvas_and_per_check_csv_value_by_value(term):
    root, _ = term
    nbg(root, "export", "--exporter=grader.course.lms.CanvasExport", "--to", "canvas.csv")
    nbg(root, "export", "--exporter=grader.course.lms.ChecksExport", "--to", "checks.csv")
    b = book(root)
    rows = list(csv.reader(open(root / "canvas.csv")))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", LAB]
    max_total = json.loads((root / "autograded" / "model_solution" / LAB / f"{LAB}.checks.json").read_text())["max_total"]
    assert rows[1][0] == "Points Possible" and float(rows[1][5]) == max_total
    got = {r[3]: r[5] for r in rows[2:]}
    assert set(got) == {*GRADED, LATE, RENAMED, "unreadable"}
    for sid in (*GRADED, LATE):
        assert float(got[sid]) == pytest.approx(b[sid]["score"] - b[sid]["penalty"]), sid
    assert float(got[LATE]) == pytest.approx(0.8 * b[LATE]["score"])
    assert got[RENAMED] == "" and got["unreadable"] == ""  # missing, not a graded 0
    checks = list(csv.DictReader(open(root / "checks.csv")))
    for sid in (*GRADED, LATE):
        mine = [r for r in checks if r["student"] == sid]
        rec = json.loads((root / "autograded" / sid / LAB / f"{LAB}.checks.json").read_text())
        want = [(c["name"], float(c["points"])) for e in rec["exercises"].values() for c in e["checks"]]
        want += [("late_penalty", -b[sid]["penalty"])] if b[sid]["penalty"] else []
        assert [r["check"] for r in mine] == [c for c, _ in want]
        assert [float(r["points"]) for r in mine] == pytest.approx([p for _, p in want])
        per_ex = {}
        for r in mine:
            per_ex[r["exercise"]] = per_ex.get(r["exercise"], 0) + float(r["points"])
        assert per_ex == pytest.approx({**b[sid]["grades"], **({"": -b[sid]["penalty"]} if b[sid]["penalty"] else {})})
    assert [r["points"] for r in checks if r["student"] == RENAMED] == [""]


def test_report_of_the_course_matches_the_gradebook(term):
    root, _ = term
    r = subprocess.run([sys.executable, "-m", "grader", "report", LAB, "--no-canary"], cwd=root, env=ENV,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = root / "reports" / LAB
    page = (out / "report.html").read_text()
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG" and (out / "pass_rate.png").is_file()
    assert page.count("data:image/png;base64,") == 2 and "src='http" not in page and "<script" not in page
    b = book(root)
    rows = {r["student"]: r for r in csv.DictReader(open(out / "class.csv"))}
    for sid in (*GRADED, LATE):
        assert float(rows[sid]["total"]) == pytest.approx(b[sid]["score"] - b[sid]["penalty"])
        for ex, v in b[sid]["grades"].items():
            assert float(rows[sid][ex]) == v
    assert rows[RENAMED]["status"] == "no gradable notebook" and rows[RENAMED]["total"] == ""
    from grader.course.report import course_records, summarize

    s = summarize(course_records(root, LAB, LAB))
    passing = sum(1 for sid in (*GRADED, LATE) if b[sid]["grades"]["advisor"] == 6)
    assert s["pass_rate"]["advisor_training"]["passed"] == passing
    assert s["exercises"]["snr"]["full"] == sum(b[sid]["grades"]["snr"] == 6 for sid in (*GRADED, LATE))
    assert dict((sid, k) for sid, k, _ in s["no_notebook"]) == {RENAMED: "renamed", "unreadable": "unreadable"}
    assert f">{RENAMED}<" in page and "no gradable notebook" in page and "namespaces" in page


def test_one_total_per_student_in_every_view(term):
    """On time and 35 h late: gradebook, Canvas export, per-check exports, class.csv, report and feedback agree."""
    root, _ = term
    b = book(root)
    assert b[LATE]["penalty"] > 0 and b["model_solution"]["penalty"] == 0
    nbg(root, "export", "--exporter=grader.course.lms.CanvasExport", "--to", "canvas.csv")
    nbg(root, "export", "--exporter=grader.course.lms.ChecksExport", "--to", "checks.csv")
    r = subprocess.run([sys.executable, "-m", "grader", "report", LAB, "--no-canary"], cwd=root, env=ENV,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = root / "reports" / LAB
    canvas = {row[3]: row[5] for row in csv.reader(open(root / "canvas.csv"))}
    klass = {row["student"]: row for row in csv.DictReader(open(out / "class.csv"))}
    page = (out / "report.html").read_text()
    for sid in ("model_solution", LATE):
        nbg(root, "generate_feedback", LAB, "--student", sid, "--force")
        final = round(b[sid]["score"] - b[sid]["penalty"], 6)
        late = f"{35.0:.1f} h late: -{b[sid]['penalty']:g} points" if sid == LATE else ""
        sums = {}
        for name in (root / "checks.csv", out / "checks.csv"):
            sums[name] = sum(float(x["points"]) for x in csv.DictReader(open(name)) if x["student"] == sid)
        views = {"canvas": float(canvas[sid]), "class.csv": float(klass[sid]["total"]), **sums}
        assert views == pytest.approx({k: final for k in views}), sid
        assert float(klass[sid]["late_penalty"] or 0) == pytest.approx(b[sid]["penalty"])
        assert klass[sid]["hours_late"] == ("35.00" if sid == LATE else "")
        assert f"<tr><td>{sid}</td><td class=n>{final:g}</td><td>{late or 'on time'}</td>" in page, sid
        feedback = (root / "feedback" / sid / LAB / f"{LAB}.html").read_text()
        assert f"(Score: {round(final, 2)} / " in feedback, sid
    assert "1 late" in page


def test_formgrader_and_feedback_say_the_late_penalty(term):
    """The formgrader shows the checks' score: the autograded notebook of a late student starts with a note."""
    from grader.course.late import NOTE_KEY

    root, _ = term
    assert "grader.course.late.LabAssignLatePenalties" in (root / "course_config.py").read_text(), \
        "course_config.py: use grader.course.late.LabAssignLatePenalties in place of nbgrader.preprocessors.AssignLatePenalties"
    b = book(root)
    late = json.loads((root / "autograded" / LATE / LAB / f"{LAB}.ipynb").read_text())["cells"]
    assert late[0]["metadata"].get(NOTE_KEY) and sum(bool(c["metadata"].get(NOTE_KEY)) for c in late) == 1
    text = "".join(late[0]["source"])
    final = b[LATE]["score"] - b[LATE]["penalty"]
    assert "Handed in 35.0 h after the due date" in text and f"-{b[LATE]['penalty']:g}" in text
    assert f"**{final:g} / " in text, text
    on_time = json.loads((root / "autograded" / "model_solution" / LAB / f"{LAB}.ipynb").read_text())["cells"]
    assert not any(c["metadata"].get(NOTE_KEY) for c in on_time)


def test_regrading_one_late_submission_grades_one_notebook(term):
    """Runs after the tests above read the first grading (pytest keeps file order)."""
    root, _ = term
    # the late student resubmits; everyone else is up to date (the two without a gradable notebook are left out)
    demo.write_submission(root / "assignments" / LAB / f"{LAB}.ipynb",
                          root / "submitted" / LATE / LAB / f"{LAB}.ipynb", demo.submissions("lab321")["memory_gib"][1])
    (root / "submitted" / LATE / LAB / "timestamp.txt").write_text("2026-10-03 00:00:00 UTC")
    before = {sid: (root / "autograded" / sid / LAB / f"{LAB}.checks.json").stat().st_mtime_ns for sid in GRADED}
    r = nbg(root, "autograde", LAB, check=False)
    assert r.returncode == 0 and "grading ahead 1 of 1 submission(s)" in r.stderr, r.stderr[-3000:]
    rec = json.loads((root / "autograded" / LATE / LAB / f"{LAB}.checks.json").read_text())
    want = json.loads((root / "autograded" / "memory_gib" / LAB / f"{LAB}.checks.json").read_text())["total"]
    assert rec["total"] == want  # regenerated from the new submission (the memory mistake)
    assert before == {sid: (root / "autograded" / sid / LAB / f"{LAB}.checks.json").stat().st_mtime_ns for sid in GRADED}
    r = nbg(root, "autograde", LAB, "--student", "memory_gib", "--force")
    assert "grading ahead 1 of 1 submission(s)" in r.stderr
    assert "progress: 1/1 graded" in r.stderr


def test_batch_command_same_scores_as_nbgrader_and_safe_report(term, tmp_path):
    root, _ = term
    klass = tmp_path / "class"
    for sid in GRADED:
        (klass / sid).mkdir(parents=True)
        (klass / sid / f"{LAB}.ipynb").write_bytes((root / "submitted" / sid / LAB / f"{LAB}.ipynb").read_bytes())
    (klass / EVIL).mkdir()
    (klass / EVIL / f"{LAB}.ipynb").write_text("{")
    (klass / "renamed").mkdir()
    (klass / "renamed" / f"{LAB} (1).ipynb").write_text("{}")
    (klass / "nothing").mkdir()
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "grader", "class", "--lab", "lab321", str(klass), "--out", str(out), "--jobs", "2",
                        "--course", str(root)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.index("canary: model solution") < r.stderr.index("progress:")
    assert "progress: 7/7 graded" in r.stderr and "\x1b[31m" not in r.stderr
    b = book(root)
    rows = {x["student"]: x for x in csv.DictReader(open(out / "class.csv"))}
    for sid in GRADED:
        if sid == "memory_gib":
            continue  # regraded above with the same notebook
        rec = json.loads((out / sid / f"{LAB}.checks.json").read_text())
        assert {k: e["score"] for k, e in rec["exercises"].items()} == b[sid]["grades"]
        assert float(rows[sid]["total"]) == b[sid]["score"]
    kinds = {x["student"]: (x["status"], x["total"]) for x in rows.values() if x["status"] != "graded"}
    assert kinds == {clean(EVIL): ("no gradable notebook", ""), "renamed": ("no gradable notebook", ""),
                     "nothing": ("no gradable notebook", "")}
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "evil&lt;img src=x onerror=alert(1)&gt;" in page and "\x1b" not in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["graded"] == 4 and summary["students"] == 7 and summary["isolation"] == "namespaces"


def test_batch_command_environment_fault_exits_3(tmp_path):
    course = tmp_path / "course"
    demo.copy_course(course)
    with open(course / "course_config.py", "a") as f:
        f.write('\nc.LabGrader.worker_imports = ["numpy", "no_such_module_for_grading"]\n')
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "a.ipynb").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "grader", "class", "--lab", "lab321", str(tmp_path / "class"), "--out", str(tmp_path / "o"),
                        "--course", str(course)], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "no_such_module_for_grading" in r.stderr and not (tmp_path / "o" / "class.csv").exists()


def test_lab_grader_settings_are_a_configurable(tmp_path):
    from traitlets.config import Application

    from grader import config

    s = config.load(ROOT)
    assert s.limits.call_timeout == 10 and s.limits.memory_bytes == 4096 << 20 and s.min_isolation == "namespaces"
    assert config.load(ROOT, {"call_timeout": 3}).limits.call_timeout == 3
    app = Application()
    app.parse_command_line(["--LabGrader.notebook_budget=42", "--LabGrader.min_isolation=process"])
    Application._instance = app
    try:
        s = config.load(ROOT)
        assert s.limits.notebook_budget == 42 and s.min_isolation == "process"
    finally:
        Application.clear_instance()
    with pytest.raises(ValueError, match="min_isolation"):
        config.load(ROOT, {"min_isolation": "sometimes"})
    r = subprocess.run([sys.executable, "-m", "grader", "nbgrader", "--help-all"], capture_output=True, text=True,
                       env=ENV, cwd=tmp_path)
    assert "--LabGrader.hidden_seed" in r.stdout and "--LabLatePenalty.percent_per_day" in r.stdout, r.stderr[-2000:]


def test_lms_collector_names():
    from grader.course.lms import LmsFileNameCollector

    c = LmsFileNameCollector()
    want = {"student_id": "doejane_1234", "file_id": "lab321.ipynb"}
    assert c.collect("/x/doejane_LATE_1234_56789_lab321-2.ipynb") == want  # no due date known: no timestamp
    assert c.collect("/x/doejane_1234_56789_lab321.ipynb") == want
    assert c.collect("/x/Jane Doe_98765_assignsubmission_file_lab321.ipynb") == \
        {"student_id": "jane_doe_98765", "file_id": "lab321.ipynb"}
    assert c.collect("/x/Jane Doe_98765_assignsubmission_file_/lab321.ipynb") == \
        {"student_id": "jane_doe_98765", "file_id": "lab321.ipynb"}
    assert c.collect("/x/LATE_anon_aB3x9_555_lab321.ipynb") == {"student_id": "anon_aB3x9", "file_id": "lab321.ipynb"}
    assert c.collect("/x/random.ipynb") is None


def test_late_penalty_plugin_rule():
    from grader.course.late import LabLatePenalty

    p = LabLatePenalty(percent_per_day=10)
    assert p.late_submission_penalty("a", 18, 1) == pytest.approx(1.8)
    assert p.late_submission_penalty("a", 18, 86400) == pytest.approx(1.8)
    assert p.late_submission_penalty("a", 18, 86401) == pytest.approx(3.6)
    assert LabLatePenalty(percent_per_day=60).late_submission_penalty("a", 10, 3 * 86400) == pytest.approx(10)
    assert LabLatePenalty(grace_minutes=5).late_submission_penalty("a", 10, 200) == 0


def test_progress_bar_on_a_terminal_and_lines_in_a_log():
    from grader.course.progress import Progress

    tty, log = io.StringIO(), io.StringIO()
    a, b = Progress(3, stream=tty, tty=True), Progress(3, stream=log, tty=False)
    for p in (a, b):
        p.step(full=True, who="x\x1b[2Jy")
        p.step(full=False)
        p.step(unreadable=True)
    assert tty.getvalue().count("\r") == 3 and "3/3 graded" in tty.getvalue() and "\x1b[2J" not in tty.getvalue()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in log.getvalue()
    assert lines[-1].startswith("lab-grader: progress: 3/3 graded") and "1 below full marks" in lines[-1]
    assert "1 no gradable notebook" in lines[-1]


def test_batch_command_on_dask_gets_the_local_scores(term, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, _ = term
    klass = tmp_path / "class"
    for sid in ("model_solution", "snr_20log10", "untouched_stubs"):
        (klass / f"{sid}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (klass / f"{sid}.ipynb").write_bytes((root / "submitted" / sid / LAB / f"{LAB}.ipynb").read_bytes())
    (klass / "broken.ipynb").write_text("[]")
    runs = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for name, extra in (("dask", ["--scheduler", cluster.scheduler_address]), ("local", ["--jobs", "2"])):
            r = subprocess.run([sys.executable, "-m", "grader", "class", "--lab", "lab321", str(klass), "--out", str(tmp_path / name),
                                "--course", str(root), "--no-report", *extra], env=ENV, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 0, r.stderr[-3000:]
            runs[name] = {x["student"]: {k: v for k, v in x.items() if k != "seconds"}
                          for x in csv.DictReader(open(tmp_path / name / "class.csv"))}
    assert runs["dask"] == runs["local"]
    assert runs["dask"]["broken"]["status"] == "no gradable notebook"
    assert json.loads((tmp_path / "dask" / "summary.json").read_text())["runner"].startswith("dask tcp://")
