"""Per-check results kept for every student, and the class-level tables built from them.

One JSON record per student (``<notebook>.checks.json`` next to the autograded notebook, or
``<out>/<student>/<notebook>.checks.json`` for ``python -m grader class``):

    {"student": "alice", "assignment": "lab321", "notebook": "lab321", "status": "graded",
     "total": 13.5, "max_total": 18, "seconds": 1.2, "isolation": "namespaces",
     "exercises": {"snr": {"score": 1.5, "max_score": 6, "checks": [
         {"name": "snr_known_value", "passed": false, "points": 0, "max_points": 1,
          "hidden": false, "message": "..."}, ...]}, ...}, "notes": [...]}

An nbgrader course's records (grader/report.py ``course_records``) also carry the gradebook's
``"late": {"seconds_late", "penalty"}`` (None when on time); tables show ``grader.course.late.record_final``.

Or, for a student with no gradable notebook, ``"status": "no gradable notebook"`` with
``"kind"`` (missing, renamed, unreadable) and ``"reason"``; such a student is never a graded 0.
Messages are the grader's (hidden checks never show a hidden input) with control characters
stripped.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Iterable, Optional

from ..grading.grade import Report
from .late import late_text, record_final
from ..sandbox.text import clean

GRADED = "graded"
NO_NOTEBOOK = "no gradable notebook"
SUFFIX = ".checks.json"


def record_of(report: Report, student: str, assignment: str, notebook: str) -> dict:
    return {
        "student": student,
        "assignment": assignment,
        "notebook": notebook,
        "status": GRADED,
        "total": report.total,
        "max_total": report.max_total,
        "seconds": round(report.seconds, 3),
        "isolation": report.isolation,
        "isolation_detail": clean(report.isolation_detail),
        "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "exercises": {
            k: {"title": e.title, "score": e.score, "max_score": e.max_score,
                "checks": [{"name": c.name, "passed": c.passed, "points": c.points, "max_points": c.max_points,
                            "hidden": c.hidden, "message": clean(c.message)} for c in e.checks]}
            for k, e in report.exercises.items()
        },
        "notes": [clean(n) for n in report.notes],
    }


def missing_record(student: str, assignment: str, notebook: str, kind: str, reason: str) -> dict:
    return {"student": student, "assignment": assignment, "notebook": notebook, "status": NO_NOTEBOOK,
            "kind": kind, "reason": clean(reason), "total": None, "max_total": None, "exercises": {}, "notes": []}


def write_record(record: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_record(path: Path) -> Optional[dict]:
    try:
        rec = json.loads(path.read_text())
        return rec if isinstance(rec, dict) and "student" in rec else None
    except (OSError, ValueError):
        return None


def check_columns(records: Iterable[dict]) -> list[tuple[str, str, float, bool]]:
    """(exercise, check, max_points, hidden) of every check, in the order the grader runs them."""
    cols, seen = [], set()
    for r in records:
        for ex, e in r.get("exercises", {}).items():
            for c in e["checks"]:
                if c["name"] not in seen:
                    seen.add(c["name"])
                    cols.append((ex, c["name"], c["max_points"], c["hidden"]))
    return cols


def exercise_columns(records: Iterable[dict]) -> list[tuple[str, float]]:
    out: dict[str, float] = {}
    for r in records:
        for ex, e in r.get("exercises", {}).items():
            out.setdefault(ex, e["max_score"])
    return list(out.items())


def _num(v) -> str:
    return "" if v is None else f"{float(v):g}"


def write_class_csv(records: list[dict], path: Path) -> Path:
    """One row per student: status, total (final: less late penalty), late penalty and hours, every exercise's
    score, every check's points (empty: no notebook)."""
    records = sorted(records, key=lambda r: r["student"])
    exs, checks = exercise_columns(records), check_columns(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "status", "total", "max_total", "late_penalty", "hours_late", *[e for e, _ in exs],
                    *[c for _, c, _, _ in checks], "seconds", "reason"])
        for r in records:
            pts = {c["name"]: c["points"] for e in r.get("exercises", {}).values() for c in e["checks"]}
            ex_scores = r.get("exercises", {})
            late = r.get("late") or {}  # total: the final score, checks' score less late penalty (grader/late.py)
            w.writerow([clean(r["student"]), r["status"], _num(record_final(r)), _num(r.get("max_total")),
                        _num(late.get("penalty")), "" if not late else f"{late['seconds_late'] / 3600:.2f}",
                        *[_num(ex_scores[e]["score"]) if e in ex_scores else "" for e, _ in exs],
                        *[_num(pts.get(c)) for _, c, _, _ in checks],
                        _num(r.get("seconds")), r.get("reason", "")])
    return path


def write_checks_csv(records: list[dict], path: Path) -> Path:
    """Long form: one row per student and check, and a ``late_penalty`` row (negative points) for a late student
    (a student with no gradable notebook: one row, empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "exercise", "check", "hidden", "passed", "points", "max_points",
                    "message"])
        for r in sorted(records, key=lambda r: (r["assignment"], r["student"])):
            if r["status"] != GRADED:
                w.writerow([clean(r["student"]), r["assignment"], "", "", "", "", "", "", r.get("reason", "")])
                continue
            for ex, e in r["exercises"].items():
                for c in e["checks"]:
                    w.writerow([clean(r["student"]), r["assignment"], ex, c["name"], int(c["hidden"]),
                                int(c["passed"]), _num(c["points"]), _num(c["max_points"]), c["message"]])
            if r.get("late"):  # the points of a student's rows add up to the final score
                w.writerow([clean(r["student"]), r["assignment"], "", "late_penalty", 0, 0, _num(-r["late"]["penalty"]),
                            0, late_text(r["late"])])
    return path


def locate(folder: Path, notebook: str) -> tuple[Optional[Path], str, str]:
    """A student's notebook in their folder: (path, "", "") or (None, kind, reason).

    ``kind`` is "missing" (no notebook at all), "renamed" (a notebook under another name, e.g.
    "lab321 (1).ipynb" from a second download) or "unreadable" (not a notebook we can read)."""
    from ..grading.nbfile import NotebookError, read_cells

    want = f"{notebook}.ipynb"
    found = None
    if folder.is_dir():
        direct = [folder / want, folder / notebook / want]
        found = next((p for p in direct if p.is_file()), None)
        if found is None:
            found = next((p for p in sorted(folder.rglob(want)) if ".ipynb_checkpoints" not in p.parts), None)
        if found is None:
            others = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            if others:
                names = ", ".join(repr(p.name) for p in others[:3])
                return None, "renamed", (f"found {names}, expected {want!r}: rename it to {want} and grade "
                                         "this student again")
            return None, "missing", f"no {want} submitted"
    elif folder.is_file():
        found = folder
    else:
        return None, "missing", f"no {want} submitted"
    try:
        read_cells(found)
    except NotebookError as exc:
        return None, "unreadable", str(exc).replace(str(found), found.name)
    return found, "", ""
