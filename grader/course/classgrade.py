"""``python -m grader class FOLDER_OR_GLOB``: grade a class of notebooks without nbgrader.

The folder holds one notebook per student: a file per student (``alice.ipynb``) or a folder per
student (``alice/lab321.ipynb``, also nbgrader's ``submitted/alice/lab321/lab321.ipynb``). A glob
names the files or folders. The canary (the model solution) is graded first; then the class,
in a local pool of sandboxes (default) or on a Dask cluster (``--scheduler ADDRESS``), with a
progress line. Written to ``--out``: ``<student>/<notebook>.checks.json`` per student,
``class.csv``, ``checks.csv``, ``summary.json``, ``report.html`` and its PNGs.

A student whose notebook is missing, renamed or unreadable is listed as "no gradable
notebook", never graded 0. An environment fault (the grading machine, not a notebook) stops
the run with exit 3; nothing is written for the notebooks not yet graded.
"""

from __future__ import annotations

import glob as globmod
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import config
from .results import SUFFIX, locate, missing_record, record_of, write_checks_csv, write_class_csv, write_record
from ..sandbox import EnvironmentFault


@dataclass
class Entry:
    student: str
    path: Optional[Path]  # None: no gradable notebook
    kind: str = ""
    reason: str = ""


def discover(target: str, notebook: str, course_root: Path) -> list[Entry]:
    """One entry per student from a folder, a glob, or an assignment name of the course (its submitted/)."""
    p = Path(target)
    if any(ch in target for ch in "*?["):
        items = [Path(x) for x in sorted(globmod.glob(target))]
    elif p.is_dir():
        items = sorted(x for x in p.iterdir() if not x.name.startswith(".") and
                       (x.is_dir() or x.suffix == ".ipynb"))
    elif p.is_file():
        items = [p]
    elif (course_root / "submitted").is_dir() and "/" not in target:
        items = sorted(x for x in (course_root / "submitted").iterdir() if x.is_dir())
        return [_entry(x.name, x / target, notebook) for x in items]
    else:
        raise FileNotFoundError(f"{target}: no such folder, file or assignment")
    return [_entry(x.stem if x.is_file() else x.name, x, notebook) for x in items]


def _entry(student: str, where: Path, notebook: str) -> Entry:
    path, kind, reason = locate(where, notebook)
    return Entry(student, path, kind, reason)


def _grade_one(path: str, student: str, settings: config.Settings, lab: str):
    """Grade one notebook (runs in this process's pool or on a Dask worker); returns a record or a fault."""
    from ..grading.canary import run_canary
    from ..grading.grade import grade_cells
    from ..grading.nbfile import NotebookError, read_cells

    try:
        run_canary(settings, lab)  # once per process and lab: on a Dask worker, the worker's own environment is checked
    except EnvironmentFault as exc:
        return {"fault": str(exc)}

    try:
        cells = read_cells(Path(path))
    except NotebookError as exc:
        return {"error": "unreadable", "reason": str(exc).replace(path, Path(path).name)}
    try:
        report = grade_cells(cells, label=student, settings=settings, lab=lab)
    except EnvironmentFault as exc:
        return {"fault": str(exc)}
    from ..grading.labs import get_lab

    return record_of(report, student, lab, get_lab(lab, settings.course_root).notebook_name)


def _lab_of_folder(folder: Path, labs: dict) -> Optional[str]:
    """The one lab whose notebook name the folder's notebooks carry (lab321.ipynb, lab321-Copy1.ipynb), if one."""
    if not folder.is_dir():
        return None
    if (folder / "submitted").is_dir():  # a course folder: its submissions, not its sources
        folder = folder / "submitted"
    stems = {p.stem for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    hits = [lab.id for lab in labs.values()
            if any(s == lab.notebook_name or s.startswith((lab.notebook_name + "-", lab.notebook_name + " "))
                   for s in stems)]
    return hits[0] if len(hits) == 1 else None


def grade_class(target: str, *, out: Optional[Path] = None, jobs: int = 0, scheduler: Optional[str] = None,
                course: Optional[Path] = None, min_isolation: Optional[str] = None, report: bool = True,
                stream=None, lab: Optional[str] = None) -> int:
    from .prefetch import default_jobs
    from ..grading.canary import CanaryFailed, canary_line, run_canary
    from .progress import Progress

    stream = stream or sys.stderr
    settings = config.load(course)
    if min_isolation:
        settings.min_isolation = min_isolation
    from ..grading.labs import UnknownLab, all_labs, resolve

    try:
        the_lab = resolve(lab or (target if target in all_labs(settings.course_root) else None)
                          or _lab_of_folder(Path(target), all_labs(settings.course_root)), settings)
    except UnknownLab as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    nb, lab = the_lab.notebook_name, the_lab.id
    out = Path(out or f"graded-{nb}")
    try:
        entries = discover(target, nb, settings.course_root)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        canary = run_canary(settings, lab)
    except CanaryFailed as exc:
        print(f"error: grading stopped, nothing was scored: {exc}", file=sys.stderr)
        return 3
    progress = Progress(len(entries), stream=stream, label="graded")
    progress.message(canary_line(canary))
    records: dict[str, dict] = {}
    todo = []
    for e in entries:
        if e.path is None:
            records[e.student] = missing_record(e.student, lab, nb, e.kind, e.reason)
            progress.message(f"{e.student}: no gradable notebook ({e.kind}): {e.reason}")
            progress.step(unreadable=True, who=e.student)
        else:
            todo.append(e)
    jobs = jobs or default_jobs(settings)
    fault = None
    if scheduler:
        fault = _run_dask(scheduler, todo, settings, records, progress, lab, nb)
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lab-class") as pool:
            futs = {pool.submit(_grade_one, str(e.path), e.student, settings, lab): e for e in todo}
            for fut in as_completed(futs):
                fault = fault or _collect(futs[fut], fut.result(), records, progress, lab, nb)
                if fault:
                    for f in futs:
                        f.cancel()
                    break
    if fault:
        print(f"\nerror: grading stopped (environment fault, not the students'): {fault}", file=sys.stderr)
        return 3
    for sid, rec in records.items():
        write_record(rec, out / sid / f"{nb}{SUFFIX}")
    recs = [records[e.student] for e in entries]
    write_class_csv(recs, out / "class.csv")
    write_checks_csv(recs, out / "checks.csv")
    summary = {"assignment": lab, "students": len(entries), "graded": sum(r["status"] == "graded" for r in recs),
               "isolation": canary.isolation, "canary": canary_line(canary), "seconds": round(time.monotonic() - t0, 2),
               "runner": f"dask {scheduler}" if scheduler else f"local pool of {jobs}"}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if report:
        from .report import write_report

        page = write_report(recs, out, title=f"{lab}: class report", isolation=canary.isolation,
                            canary=canary_line(canary), runner=summary["runner"])
        progress.message(f"report: {page}")
    progress.message(f"{summary['graded']} of {len(entries)} graded in {summary['seconds']:.1f} s; results in {out}")
    return 0


def _collect(e: Entry, res: dict, records: dict, progress, lab: str, nb: str) -> Optional[str]:
    if "fault" in res:
        return res["fault"]
    if "error" in res:
        records[e.student] = missing_record(e.student, lab, nb, res["error"], res["reason"])
        progress.step(unreadable=True, who=e.student)
        return None
    res["student"] = e.student
    records[e.student] = res
    progress.step(full=res["total"] >= res["max_total"], who=e.student)
    return None


def _run_dask(address: str, todo: list[Entry], settings: config.Settings, records: dict, progress,
              lab: str, nb: str) -> Optional[str]:
    """The same grading on a Dask cluster: each worker grades in its own sandboxes (same settings)."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        return "--scheduler needs the 'distributed' package (pip install -e '.[dask]')"
    with Client(address) as client:
        futs = {client.submit(_grade_one, str(e.path), e.student, settings, lab, key=f"lab-grade-{i}-{e.student}",
                              pure=False): e for i, e in enumerate(todo)}
        for fut in dask_completed(list(futs)):
            fault = _collect(futs[fut], fut.result(), records, progress, lab, nb)
            if fault:
                client.cancel(list(futs))
                return fault
    return None
