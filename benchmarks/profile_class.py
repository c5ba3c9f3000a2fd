"""Where a class's grading time goes, per notebook: the sandbox's phases, then nbgrader's own share.

    .venv/bin/python benchmarks/profile_class.py [--lab lab321] [--repeat 5] [--class-size 20] [--jobs N]

Part 1 (in this process, the lab's model solution, median of --repeat runs):
  * notebook start: a fork of the warm zygote with its masks, uid, namespaces, limits and seccomp
    (a notebook of one empty cell, launched until ready);
  * cells: the notebook's code cells with the lab's teaching cells left out (what grading runs),
    and all of them (what grading ran before teaching cells);
  * checks: every check of the lab, public and hidden, against that notebook.
Part 2 (``nbgrader autograde <lab> --force`` on a class of --class-size copies of the model solution,
under cProfile in nbgrader's own process): the wall time split into the canary (once per run), waiting
for the grading-ahead pool's results (``Prefetcher.report``: the pool is behind), nbgrader's gradebook
(``nbgrader.api``), its notebook conversion (nbconvert/nbformat read, preprocess, write) and the rest.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_class  # noqa: E402 - the class benchmark's environment for nbgrader


def _median(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def sandbox_phases(lab_id: str, repeat: int) -> dict[str, float]:
    from grader import config
    from grader.course import demo
    from grader.grading import teaching
    from grader.grading.grade import run_check
    from grader.grading.labs import get_lab
    from grader.grading.nbfile import read_cells
    from grader.sandbox import Sandbox, zygote

    settings = config.load(ROOT)
    lab = get_lab(lab_id, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        nb = Path(tmp) / f"{lab_id}.ipynb"
        demo.write_submission(ROOT / "assignments" / lab_id / f"{lab_id}.ipynb", nb, demo.solution_sources(lab_id))
        cells = read_cells(nb)
    graded = teaching.without_teaching(cells, teaching.for_lab(lab, ROOT))
    t = time.perf_counter()
    zygote()
    out = {"zygote boot (once per run)": time.perf_counter() - t}

    def ready(code):
        with Sandbox(code, limits=settings.limits, level=settings.isolation, course_root=ROOT) as sb:
            sb.wait_ready()

    start = _median(lambda: ready([""]), repeat)
    out["notebook start (fork, masks, limits)"] = start
    out["cells, teaching cells left out"] = _median(lambda: ready(graded), repeat) - start
    out["cells, all (teaching cells run)"] = _median(lambda: ready(cells), repeat) - start

    def checks():
        with Sandbox(graded, limits=settings.limits, level=settings.isolation, course_root=ROOT) as sb:
            sb.wait_ready()
            t0 = time.perf_counter()
            for c in lab.exercises.checks:
                run_check(sb, c, settings.hidden_seed)
            return time.perf_counter() - t0

    out["checks (public and hidden)"] = statistics.median(checks() for _ in range(repeat))
    return out


def nbgrader_share(lab_id: str, size: int, jobs: int) -> dict[str, float]:
    from grader.course import demo

    course = Path(tempfile.mkdtemp(prefix=f"profile-{lab_id}-"))
    try:
        demo.copy_course(course)
        env = bench_class.env(jobs)  # the course's Python first on PATH, the grading-ahead pool's size
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", lab_id, "--force"], cwd=course,
                       env=env, capture_output=True, check=True)
        release = course / "assignments" / lab_id / f"{lab_id}.ipynb"
        for i in range(size):
            dest = course / "submitted" / f"s{i:03d}" / lab_id / f"{lab_id}.ipynb"
            demo.write_submission(release, dest, demo.solution_sources(lab_id))
        prof = course / "autograde.prof"
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "nbgrader", "autograde",
                            lab_id, "--force"], cwd=course, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"nbgrader autograde failed:\n{r.stderr[-3000:]}")
        stats = pstats.Stats(str(prof))
        cum = {}
        for (file, _, name), (_, _, _, ct, _) in stats.stats.items():
            cum[(file, name)] = max(cum.get((file, name), 0.0), ct)

        def total(file_part: str, name: str) -> float:
            return sum(v for (f, n), v in cum.items() if file_part in f and n == name)

        canary = total("nbgrader_plugin.py", "pre_convert_hook")
        waiting = total("prefetch.py", "report")
        gradebook = max((v for (f, n), v in cum.items() if "nbgrader/api.py" in f), default=0.0)
        convert = total("nbconvert/exporters/exporter.py", "from_filename")
        steps = sorted(((v, f"{Path(f).parent.name}/{Path(f).name}") for (f, n), v in cum.items()
                        if n in ("preprocess", "preprocess_cell") and ("preprocessors" in f or "grader" in f)),
                       reverse=True)
        print("  preprocessors, cumulative seconds over the class (cProfile; TrustedGrade includes the waiting):")
        for v, where in steps[:8]:
            print(f"    {where:<54}{v:7.2f}")
        return {"wall": wall, "canary (once per run)": canary,
                "waiting for the grading-ahead pool": waiting,
                "nbgrader converting notebooks (read, preprocess, write)": convert - waiting,
                "nbgrader's gradebook (nbgrader.api, largest call)": gradebook,
                "the rest (start-up, imports, traitlets, collect)": wall - canary - convert}
    finally:
        shutil.rmtree(course, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", default="lab321")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--class-size", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=max(2, min(4, os.cpu_count() or 1)))
    a = ap.parse_args()
    print(f"Part 1: {a.lab}'s model solution in the sandbox (median of {a.repeat}), seconds")
    for what, s in sandbox_phases(a.lab, a.repeat).items():
        print(f"  {what:<48}{s:7.2f}")
    print(f"Part 2: nbgrader autograde {a.lab} --force, {a.class_size} notebooks, {a.jobs} jobs (cProfile), "
          "seconds (per notebook)")
    for what, s in nbgrader_share(a.lab, a.class_size, a.jobs).items():
        print(f"  {what:<56}{s:7.1f}  ({s / a.class_size:.2f})")


if __name__ == "__main__":
    main()
