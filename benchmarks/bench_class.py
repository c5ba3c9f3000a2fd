"""A class through `nbgrader autograde`: this course vs stock nbgrader, class size, regrading one late student.

    .venv/bin/python benchmarks/bench_class.py [--sizes 60,240] [--stock-size 60] [--jobs N]

All in one run on this machine:
  * ours-N: `nbgrader autograde lab321 --force` with this course (canary, trusted grading, grading ahead)
    on a class of N notebooks: the model solution, the demo's typical mistakes, untouched stubs and a few
    hostile notebooks (exit, infinite loop, memory bomb), repeated;
  * stock-N: the same N notebooks, with nbgrader's own Execute preprocessor (each notebook in a kernel);
  * regrade-one: after ours-N, one student resubmits late: `nbgrader autograde lab321` (no --force);
  * one-alone: that notebook alone in a course of its own (`--force`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from grader.course import demo  # noqa: E402

LAB = "lab321"  # the class benchmark grades Lab 3.2.1
HOSTILE = {
    "hostile_exit": "import os\nos._exit(0)\n",
    "hostile_kill": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "hostile_memory": "x = bytearray(16 << 30)\n",
}
STOCK = '''
# stock nbgrader: every notebook runs in a kernel (Execute), no trusted grading, no canary
c.Autograde.pre_convert_hook = None
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute", "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput", "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties", "nbgrader.preprocessors.CheckCellMetadata"]
'''


def env(jobs: int) -> dict:
    return {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "LAB_GRADER_JOBS": str(jobs)}


def nbgrader(course: Path, *args: str, jobs: int) -> float:
    t = time.perf_counter()
    with open(course / "bench.log", "ab") as f:
        subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env(jobs), stdout=f, stderr=f)
    return time.perf_counter() - t


def make_course(n: int) -> Path:
    import nbformat

    course = Path(tempfile.mkdtemp(prefix=f"lab321-class{n}-"))
    demo.copy_course(course)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", LAB, "--force"], cwd=course,
                   env=env(1), capture_output=True, check=True)
    release = course / "assignments" / LAB / f"{LAB}.ipynb"
    kinds = list(demo.submissions(LAB).items())
    kinds += [(k, ("hostile", src)) for k, src in HOSTILE.items()]
    for i in range(n):
        sid, (_, sources) = kinds[i % len(kinds)]
        dest = course / "submitted" / f"s{i:03d}_{sid}" / LAB / f"{LAB}.ipynb"
        if sid in HOSTILE:
            demo.write_submission(release, dest, demo.solution_sources(LAB))
            nb = nbformat.read(dest, as_version=4)
            nb.cells.insert(1, nbformat.v4.new_code_cell(sources))
            nbformat.write(nb, dest)
        else:
            demo.write_submission(release, dest, sources)
        (dest.parent / "timestamp.txt").write_text("2026-10-01 11:00:00 UTC")
    return course


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="60,240")
    ap.add_argument("--stock-size", type=int, default=60, help="0: skip stock nbgrader")
    ap.add_argument("--jobs", type=int, default=max(2, min(4, os.cpu_count() or 1)))
    a = ap.parse_args()
    rows = []
    courses = {}
    for n in [int(x) for x in a.sizes.split(",") if x]:
        course = courses[n] = make_course(n)
        print(f"ours-{n}: nbgrader autograde with this course ...", file=sys.stderr, flush=True)
        rows.append((f"ours-{n}", n, nbgrader(course, "autograde", LAB, "--force", jobs=a.jobs)))
    first = min(courses)
    course = courses[first]
    late = sorted((course / "submitted").iterdir())[0].name
    (course / "submitted" / late / LAB / "timestamp.txt").write_text("2026-10-03 11:00:00 UTC")
    print("regrade-one: one late resubmission ...", file=sys.stderr, flush=True)
    rows.append(("regrade-one", 1, nbgrader(course, "autograde", LAB, jobs=a.jobs)))
    alone = make_course(0)
    shutil.copytree(course / "submitted" / late, alone / "submitted" / late)
    print("one-alone: the same notebook in a course of its own ...", file=sys.stderr, flush=True)
    rows.append(("one-alone", 1, nbgrader(alone, "autograde", LAB, "--force", jobs=a.jobs)))
    if a.stock_size:
        src = courses.get(a.stock_size) or make_course(a.stock_size)
        stock = Path(tempfile.mkdtemp(prefix="lab321-stock-"))
        for name in ("course_config.py", "nbgrader_config.py", "gradebook.db"):
            shutil.copy(src / name, stock / name)
        for d in ("source", "assignments", "submitted"):
            shutil.copytree(src / d, stock / d)
        with open(stock / "course_config.py", "a") as f:
            f.write(STOCK)
        print(f"stock-{a.stock_size}: nbgrader autograde, Execute in a kernel ...", file=sys.stderr, flush=True)
        rows.append((f"stock-{a.stock_size}", a.stock_size, nbgrader(stock, "autograde", LAB, "--force", jobs=1)))
    print(f"{'run':<14}{'notebooks':>10}{'seconds':>10}{'s / notebook':>14}")
    for name, n, s in rows:
        print(f"{name:<14}{n:>10}{s:>10.1f}{s / max(n, 1):>14.2f}")
    t = {name: s for name, _, s in rows}
    sizes = sorted(courses)
    if len(sizes) > 1:
        print(f"ours-{sizes[-1]} / ours-{sizes[0]}: {t[f'ours-{sizes[-1]}'] / t[f'ours-{sizes[0]}']:.2f}x "
              f"(linear: {sizes[-1] / sizes[0]:.1f}x)")
    if a.stock_size and f"ours-{a.stock_size}" in t:
        print(f"stock / ours on {a.stock_size}: {t[f'stock-{a.stock_size}'] / t[f'ours-{a.stock_size}']:.2f}x")
    print(f"regrade-one / one-alone: {t['regrade-one'] / t['one-alone']:.2f}x")
    print(f"(courses left in {', '.join(str(c) for c in courses.values())})")


if __name__ == "__main__":
    main()
