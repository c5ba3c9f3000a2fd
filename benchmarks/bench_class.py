"""Autograde a class with nbgrader, serially and with the grading-ahead pool, in one run.

    .venv/bin/python benchmarks/bench_class.py [--students 18] [--jobs 2]

The class is the demo's submissions (model solution, stubs, typical mistakes) repeated
until it has --students members. Prints seconds per run, per notebook, and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import demo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=18)
    ap.add_argument("--jobs", type=int, default=max(2, min(4, os.cpu_count() or 1)))
    a = ap.parse_args()
    course = Path(tempfile.mkdtemp(prefix="lab321-class-"))
    demo.copy_course(course)
    log = course / "nbgrader.log"
    demo.nbgrader(course, "generate_assignment", demo.LAB, "--force", log=log)
    release = course / "assignments" / demo.LAB / f"{demo.LAB}.ipynb"
    subs = list(demo.submissions().items())
    for i in range(a.students):
        sid, (_, sources) = subs[i % len(subs)]
        demo.write_submission(release, course / "submitted" / f"s{i:03d}_{sid}" / demo.LAB / f"{demo.LAB}.ipynb", sources)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    rows = []
    for jobs in (1, a.jobs):
        print(f"autograding {a.students} notebooks with LAB_GRADER_JOBS={jobs} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        with open(log, "ab") as f:
            subprocess.run([sys.executable, "-m", "nbgrader", "autograde", demo.LAB, "--force"], cwd=course,
                           env={**env, "LAB_GRADER_JOBS": str(jobs)}, stdout=f, stderr=f, check=True)
        rows.append((jobs, time.perf_counter() - t))
    print(f"{'jobs':>5}{'seconds':>10}{'s / notebook':>14}{'speed-up':>10}")
    for jobs, s in rows:
        print(f"{jobs:>5}{s:>10.1f}{s / a.students:>14.2f}{rows[0][1] / s:>10.2f}")
    print(f"(course left in {course})")


if __name__ == "__main__":
    main()
