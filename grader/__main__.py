"""Command line: ``python -m grader {grade,demo,device-check,selfcheck}`` (see --help)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_grade(a: argparse.Namespace) -> int:
    from . import config
    from .grade import NotebookError, format_report, grade_path
    from .sandbox import EnvironmentFault

    settings = config.load(Path(a.course) if a.course else None)
    if a.min_isolation:
        settings.min_isolation = a.min_isolation
    try:
        report = grade_path(Path(a.notebook), settings=settings, include_hidden=not a.public_only)
    except NotebookError as exc:
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
    from .demo import run_demo

    return run_demo(Path(a.dir) if a.dir else None, keep=a.keep)


def cmd_device_check(a: argparse.Namespace) -> int:
    from .device import device_check

    return device_check(simulate=tuple(int(v) for v in a.simulate.split(".")) if a.simulate else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader", description="Lab 3.2.1 trusted grader")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grade", help="grade one notebook in the sandbox")
    g.add_argument("notebook")
    g.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    g.add_argument("--course", help="course folder holding course_config.py (default: found from cwd)")
    g.add_argument("--min-isolation", choices=("none", "process", "namespaces"),
                   help="refuse to grade below this isolation level (exit 3)")
    g.add_argument("--public-only", action="store_true", help="run only the public checks")
    g.set_defaults(fn=cmd_grade)
    d = sub.add_parser("demo", help="build a demo course, autograde sample submissions with nbgrader, print scores")
    d.add_argument("--dir", help="where to build the demo course (default: a temporary folder)")
    d.add_argument("--keep", action="store_true", help="keep the demo course folder")
    d.set_defaults(fn=cmd_demo)
    c = sub.add_parser("device-check", help="check native FP8/FP4 paths against the references")
    c.add_argument("--simulate", help="pretend the GPU has this compute capability, e.g. 12.1 (no GPU code runs)")
    c.set_defaults(fn=cmd_device_check)
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
