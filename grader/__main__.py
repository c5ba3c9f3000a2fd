"""Command line: ``python -m grader {grade,class,report,demo,device-check,config,nbgrader}`` (see --help).

Installed as the console script ``lab-grader`` too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_grade(a: argparse.Namespace) -> int:
    from . import config
    from .grading.grade import format_report, grade_cells
    from .grading.labs import UnknownLab, lab_for_notebook
    from .grading.nbfile import NotebookError, read_cells
    from .sandbox import EnvironmentFault

    settings = config.load(Path(a.course) if a.course else None)
    if a.min_isolation:
        settings.min_isolation = a.min_isolation
    try:
        cells = read_cells(Path(a.notebook))  # an unreadable file is said as such, before any lab lookup
        lab = a.lab or lab_for_notebook(Path(a.notebook), settings.course_root)
        report = grade_cells(cells, label=str(a.notebook), settings=settings, include_hidden=not a.public_only,
                             lab=lab)
    except (NotebookError, UnknownLab) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EnvironmentFault as exc:  # the grading machine, not the notebook: nothing was scored
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if "fell back" in report.isolation_detail:
        print(f"warning: isolation level '{report.isolation}': {report.isolation_detail.split(';')[0]}",
              file=sys.stderr)
    if a.json:
        print(json.dumps(report.to_json()))
    else:
        print(format_report(report))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .course.demo import run_demo

    return run_demo(Path(a.dir) if a.dir else None, keep=a.keep, lab=a.lab)


def cmd_device_check(a: argparse.Namespace) -> int:
    from .course.device import device_check

    return device_check(simulate=tuple(int(v) for v in a.simulate.split(".")) if a.simulate else None)


def cmd_class(a: argparse.Namespace) -> int:
    from .course.classgrade import grade_class

    return grade_class(a.target, out=Path(a.out) if a.out else None, jobs=a.jobs, scheduler=a.scheduler,
                       course=Path(a.course) if a.course else None, min_isolation=a.min_isolation,
                       report=not a.no_report, lab=a.lab)


def cmd_report(a: argparse.Namespace) -> int:
    """The class report of an nbgrader course after `nbgrader autograde`."""
    from . import config
    from .grading.canary import CanaryFailed, canary_line, run_canary
    from .course.report import course_records, write_report
    from .course.results import write_checks_csv, write_class_csv

    from .grading.labs import UnknownLab, get_lab

    settings = config.load(Path(a.course) if a.course else None)
    try:
        lab = get_lab(a.assignment, settings.course_root)
    except UnknownLab as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    nb = a.notebook or lab.notebook_name
    records = course_records(settings.course_root, a.assignment, nb)
    if not records:
        print(f"error: no students in {settings.course_root / 'submitted'} or the gradebook", file=sys.stderr)
        return 2
    out = Path(a.out) if a.out else settings.course_root / "reports" / a.assignment
    graded = [r for r in records if r["status"] == "graded"]
    isolation = graded[0]["isolation"] if graded else "unknown"
    if a.no_canary:
        canary = "canary: not run (--no-canary)"
    else:
        try:
            canary = canary_line(run_canary(settings, lab))
        except CanaryFailed as exc:
            canary = f"canary FAILED in this environment: {exc}"
    write_class_csv(records, out / "class.csv")
    write_checks_csv(records, out / "checks.csv")
    page = write_report(records, out, title=f"{a.assignment}: class report", isolation=isolation, canary=canary,
                        runner="graded by nbgrader autograde")
    print(f"{len(graded)} of {len(records)} students graded; report: {page}; tables: {out / 'class.csv'}, "
          f"{out / 'checks.csv'}")
    return 0


def cmd_config(a: argparse.Namespace) -> int:
    """The course's settings (LabGrader, LabLatePenalty) next to their defaults, with their help."""
    from . import config
    from .course.late import LabLatePenalty

    root = Path(a.course).resolve() if a.course else config.find_course_root()
    try:
        print(config.describe(root, [config.LabGrader, LabLatePenalty]))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _course_classes() -> list:
    from .config import LabGrader
    from .course.late import LabLatePenalty
    from .course.lms import CanvasExport, ChecksExport, LmsFileNameCollector

    return [LabGrader, LabLatePenalty, LmsFileNameCollector, CanvasExport, ChecksExport]


def nbgrader_main(argv: list[str]) -> int:
    """nbgrader with the course's classes known to it, so `--help-all` lists LabGrader and friends."""
    import nbgrader.plugins as plugins
    from nbgrader.apps.nbgraderapp import NbGraderApp

    for cls in _course_classes():
        if cls.__name__ not in plugins.__all__:
            setattr(plugins, cls.__name__, cls)
            plugins.__all__.append(cls.__name__)
    sys.argv = ["nbgrader", *argv]
    NbGraderApp.launch_instance(argv=argv)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["nbgrader"]:
        return nbgrader_main(argv[1:])
    if argv[:1] == ["doctor"]:
        from .course.doctor import main as doctor_main

        return doctor_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m grader", description="trusted grader of the course's labs")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grade", help="grade one notebook in the sandbox")
    g.add_argument("notebook")
    g.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    g.add_argument("--course", help="course folder holding course_config.py (default: found from cwd)")
    g.add_argument("--min-isolation", choices=("none", "process", "namespaces"),
                   help="refuse to grade below this isolation level (exit 3)")
    g.add_argument("--public-only", action="store_true", help="run only the public checks")
    g.add_argument("--lab", help="the notebook's lab id (default: found from the notebook's name or grade cells)")
    g.set_defaults(fn=cmd_grade)
    d = sub.add_parser("demo", help="build a demo course, autograde sample submissions with nbgrader, print scores")
    d.add_argument("--dir", help="where to build the demo course (default: a temporary folder)")
    d.add_argument("--keep", action="store_true", help="keep the demo course folder")
    d.add_argument("--lab", help="demo only this lab (default: every lab of the course)")
    d.set_defaults(fn=cmd_demo)
    c = sub.add_parser("device-check", help="check native FP8/FP4 paths against the references")
    c.add_argument("--simulate", help="pretend the GPU has this compute capability, e.g. 12.1 (no GPU code runs)")
    c.set_defaults(fn=cmd_device_check)
    k = sub.add_parser("class", help="grade a folder of notebooks (one per student) without nbgrader, "
                       "with the canary first, progress, per-check JSON, class CSV and report")
    k.add_argument("target", help="folder (a notebook or a folder per student), a glob, or an assignment name "
                   "of the course (its submitted/ folder)")
    k.add_argument("--jobs", type=int, default=0, help="notebooks graded side by side (default: LabGrader.jobs, "
                   "LAB_GRADER_JOBS or min(4, cores))")
    k.add_argument("--out", help="where results go (default: graded-<assignment>)")
    k.add_argument("--scheduler", help="a Dask distributed scheduler address (tcp://host:8786); default: a local pool")
    k.add_argument("--course", help="course folder holding course_config.py (default: found from cwd)")
    k.add_argument("--min-isolation", choices=("none", "process", "namespaces"))
    k.add_argument("--no-report", action="store_true", help="skip the HTML report")
    k.add_argument("--lab", help="the lab graded (default: TARGET when it is a lab id, else the one lab whose notebooks TARGET holds)")
    k.set_defaults(fn=cmd_class)
    r = sub.add_parser("report", help="class report of an nbgrader course after nbgrader autograde")
    r.add_argument("assignment", help="the lab's id (nbgrader's assignment name)")
    r.add_argument("--notebook", help="notebook name (default: the lab's notebook)")
    r.add_argument("--out", help="where the report goes (default: <course>/reports/<assignment>)")
    r.add_argument("--course", help="course folder holding course_config.py (default: found from cwd)")
    r.add_argument("--no-canary", action="store_true", help="do not re-run the canary for the report's canary line")
    r.set_defaults(fn=cmd_report)
    cf = sub.add_parser("config", help="the course's settings (LabGrader, LabLatePenalty) next to their defaults, "
                        "with their help")
    cf.add_argument("--course", help="course folder holding course_config.py (default: found from cwd)")
    cf.set_defaults(fn=cmd_config)
    sub.add_parser("doctor", help="check what this machine lets the sandbox do, with the fix for each missing piece")
    sub.add_parser("nbgrader", help="run nbgrader with the course's classes registered (e.g. --help-all)")
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
