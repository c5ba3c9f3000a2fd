"""The class report: one self-contained HTML page (PNGs embedded, also written next to it).

Built from the per-check records (grader/course/results.py) of ``python -m grader class`` or of an
nbgrader course after ``nbgrader autograde`` (``python -m grader report lab321``). Every text
that comes from a student (ids, file names, messages) is stripped of control characters and
HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from .late import late_text, lateness_of, record_final
from .results import GRADED, check_columns, exercise_columns
from ..sandbox.text import clean


def esc(text) -> str:
    return html.escape(clean("" if text is None else str(text)), quote=True)


def summarize(records: list[dict]) -> dict:
    """The report's numbers (also what tests check against the gradebook)."""
    graded = [r for r in records if r["status"] == GRADED]
    exs = exercise_columns(graded)
    checks = check_columns(graded)
    per_ex = {}
    for ex, mx in exs:
        scores = [r["exercises"][ex]["score"] for r in graded if ex in r["exercises"]]
        per_ex[ex] = {"max": mx, "scores": scores, "mean": statistics.fmean(scores) if scores else None,
                      "median": statistics.median(scores) if scores else None,
                      "full": sum(s >= mx for s in scores)}
    pass_rate = {}
    failures: Counter = Counter()
    for ex, name, mx, hidden in checks:
        res = [c for r in graded for c in r["exercises"].get(ex, {}).get("checks", []) if c["name"] == name]
        passed = sum(c["passed"] for c in res)
        pass_rate[name] = {"exercise": ex, "hidden": hidden, "passed": passed, "graded": len(res),
                           "rate": passed / len(res) if res else None}
        for c in res:
            if not c["passed"]:
                failures[(name, c["message"])] += 1
    slowest = sorted(graded, key=lambda r: -(r.get("seconds") or 0))[:10]
    return {
        "students": len(records), "graded": len(graded),
        "totals": {r["student"]: record_final(r) for r in graded},  # final: less late penalty
        "late": {r["student"]: r["late"] for r in graded if r.get("late")},
        "max_total": graded[0]["max_total"] if graded else None,
        "exercises": per_ex, "pass_rate": pass_rate,
        "failures": failures.most_common(15),
        "slowest": [(r["student"], r.get("seconds") or 0.0) for r in slowest],
        "no_notebook": [(r["student"], r.get("kind", ""), r.get("reason", "")) for r in records
                        if r["status"] != GRADED],
    }


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def plots(s: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    out = {}
    exs = list(s["exercises"].items())
    if exs:
        fig = Figure(figsize=(3.2 * len(exs), 2.6))
        for i, (ex, d) in enumerate(exs):
            ax = fig.add_subplot(1, len(exs), i + 1)
            mx = d["max"] or 1
            ax.hist(d["scores"], bins=[x * mx / 12 for x in range(13)], color="#4c72b0", edgecolor="white")
            ax.set_title(f"{ex} (max {mx:g})")
            ax.set_xlabel("score")
            ax.set_xlim(0, mx)
            if i == 0:
                ax.set_ylabel("students")
        fig.tight_layout()
        out["scores.png"] = _png(fig)
    pr = [(n, d) for n, d in s["pass_rate"].items() if d["rate"] is not None]
    if pr:
        fig = Figure(figsize=(6.5, 0.28 * len(pr) + 1))
        ax = fig.add_subplot(1, 1, 1)
        names = [f"{n}{' (hidden)' if d['hidden'] else ''}" for n, d in pr][::-1]
        rates = [100 * d["rate"] for _, d in pr][::-1]
        ax.barh(names, rates, color=["#55a868" if r >= 80 else "#dd8452" if r >= 50 else "#c44e52" for r in rates])
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of graded notebooks passing")
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        out["pass_rate.png"] = _png(fig)
    return out


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#f3f3f3}td.n{text-align:right}.muted{color:#666}img{max-width:100%}"""


def _table(head: list[str], rows: list[list], num: set[int] = frozenset()) -> str:
    h = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i in num else ''}>{esc(v)}</td>" for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render(records: list[dict], *, title: str, isolation: str, canary: str, runner: str = "",
           images: Optional[dict[str, bytes]] = None) -> str:
    s = summarize(records)
    images = images if images is not None else plots(s)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"]
    parts.append(f"<p>{s['graded']} of {s['students']} students graded; "
                 f"{len(s['no_notebook'])} with no gradable notebook; {len(s['late'])} late. Isolation: <b>{esc(isolation)}</b>. "
                 f"{esc(canary[:1].upper() + canary[1:])}. {esc(runner)}</p>"
                 f"<p class=muted>generated {esc(time.strftime('%Y-%m-%d %H:%M'))}</p>")
    parts.append("<h2>Score distribution per exercise</h2>")
    parts.append(_table(["exercise", "max", "mean", "median", "full marks"],
                        [[ex, f"{d['max']:g}", "" if d["mean"] is None else f"{d['mean']:.2f}",
                          "" if d["median"] is None else f"{d['median']:g}", f"{d['full']} / {len(d['scores'])}"]
                         for ex, d in s["exercises"].items()], {1, 2, 3}))
    if "scores.png" in images:
        parts.append(_img("scores.png", images, "score distribution per exercise"))
    parts.append("<h2>Pass rate of every check</h2>")
    parts.append(_table(["check", "exercise", "kind", "passed", "rate"],
                        [[n, d["exercise"], "hidden" if d["hidden"] else "public", f"{d['passed']} / {d['graded']}",
                          "" if d["rate"] is None else f"{100 * d['rate']:.0f} %"] for n, d in s["pass_rate"].items()],
                        {3, 4}))
    if "pass_rate.png" in images:
        parts.append(_img("pass_rate.png", images, "pass rate of every check"))
    parts.append("<h2>Most frequent failures (this class's common mistakes)</h2>")
    parts.append(_table(["count", "check", "message"], [[n, c, m] for (c, m), n in s["failures"]], {0}))
    parts.append("<h2>Slowest notebooks</h2>")
    parts.append(_table(["student", "seconds"], [[sid, f"{sec:.2f}"] for sid, sec in s["slowest"]], {1}))
    parts.append("<h2>No gradable notebook</h2>")
    parts.append(_table(["student", "why", "what to do"], [list(x) for x in s["no_notebook"]])
                 if s["no_notebook"] else "<p>none</p>")
    parts.append("<h2>Every student</h2>")
    exs = list(s["exercises"])
    rows = []
    for r in sorted(records, key=lambda r: r["student"]):
        if r["status"] == GRADED:
            rows.append([r["student"], f"{record_final(r):g}", late_text(r.get("late")) or "on time", *[f"{r['exercises'][e]['score']:g}" if e in r["exercises"]
                                                           else "" for e in exs]])
        else:
            rows.append([r["student"], "no gradable notebook", "", *["" for _ in exs]])
    parts.append("<p class=muted>total: the checks' score less the late penalty (the score every export and the "
                 "feedback show); the exercise columns are the checks' scores.</p>")
    parts.append(_table(["student", "total", "late", *exs], rows, {1, *range(3, 3 + len(exs))}))
    parts.append("</body></html>")
    return "\n".join(parts)


def _img(name: str, images: dict[str, bytes], alt: str) -> str:
    data = base64.b64encode(images[name]).decode()
    return f"<p><img alt='{esc(alt)}' src='data:image/png;base64,{data}'></p>"


def write_report(records: list[dict], out: Path, *, title: str, isolation: str, canary: str,
                 runner: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    images = plots(summarize(records))
    for name, data in images.items():
        (out / name).write_bytes(data)
    page = out / "report.html"
    page.write_text(render(records, title=title, isolation=isolation, canary=canary, runner=runner, images=images))
    return page


def course_records(root: Path, assignment: str, notebook: str) -> list[dict]:
    """Records of an nbgrader course after autograde: every student in submitted/ or in the gradebook, a graded
    one with the gradebook's lateness (``"late"``: seconds late and penalty, None when on time)."""
    from .results import locate, missing_record, read_record, SUFFIX

    students = set()
    sub = root / "submitted"
    if sub.is_dir():
        students |= {p.name for p in sub.iterdir() if p.is_dir()}
    db = root / "gradebook.db"
    late = {}
    if db.is_file():
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{db}") as gb:
            students |= {s.id for s in gb.students}
            for s in gb.students:
                for done in s.submissions:
                    if done.assignment.name == assignment:
                        late[s.id] = lateness_of(done)
    out = []
    for sid in sorted(students):
        folder = sub / sid / assignment
        path, kind, reason = locate(folder, notebook)
        rec = read_record(root / "autograded" / sid / assignment / f"{notebook}{SUFFIX}")
        if path is None:
            out.append(missing_record(sid, assignment, notebook, kind, reason))
        elif rec is None or rec.get("status") != GRADED:
            out.append(missing_record(sid, assignment, notebook, "not graded",
                                      "submitted but not autograded yet: run nbgrader autograde " + assignment))
        else:
            out.append({**rec, "late": late.get(sid)})
    return out
