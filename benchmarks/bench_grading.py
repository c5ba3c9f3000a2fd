"""Time one notebook graded in the sandbox next to the same notebook run without it, in one run.

    .venv/bin/python benchmarks/bench_grading.py [--repeat 3]

Baseline: nbclient executing the notebook in a fresh ipykernel, which is what nbgrader's
Execute preprocessor does. Then the same cells in our worker at each isolation level
(no checks), then a full trusted grade (sandbox + every hidden and public check).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NB = ROOT / "source" / "lab321" / "lab321.ipynb"


def timed(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    import nbformat
    from nbclient import NotebookClient

    from grader import config
    from grader.grade import grade_path
    from grader.nbfile import read_cells
    from grader.sandbox import Sandbox

    cells = read_cells(NB)
    settings = config.load(ROOT)

    def nbclient_run():
        nb = nbformat.read(NB, as_version=4)
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()

    def sandbox(level):
        def run():
            with Sandbox(cells, level=level, course_root=ROOT) as sb:
                assert sb.run.fatal is None, sb.run.fatal
        return run

    def full_grade():
        grade_path(NB, settings=settings)

    print(f"one notebook ({NB.name}), median of {a.repeat} runs, this machine")
    rows = [("nbclient + ipykernel (nbgrader's Execute), no isolation", timed(nbclient_run, a.repeat))]
    for level in ("process", "namespaces"):
        rows.append((f"sandbox worker, level '{level}', cells only", timed(sandbox(level), a.repeat)))
    rows.append(("full trusted grade: sandbox 'namespaces' + all checks", timed(full_grade, a.repeat)))
    base = rows[0][1]
    print(f"{'what':<58}{'seconds':>9}{'extra vs baseline':>19}")
    for name, s in rows:
        print(f"{name:<58}{s:>9.2f}{s - base:>+18.2f}s")


if __name__ == "__main__":
    main()
