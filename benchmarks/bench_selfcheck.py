"""Self-check time of each lab's model solution against a bare ``import torch, numpy, matplotlib.pyplot``.

    .venv/bin/python benchmarks/bench_selfcheck.py [--rounds 3] [--lab lab321 --lab lab322]

The self-check a student runs is ``./lab check lab321.ipynb``: pytest with the course's plugin, the
notebook run in the grader's sandbox, its public checks. Each round times, in turn, the bare import and
``./lab check`` on every lab's released notebook with the model solution pasted into its solution cells
(a copy in a temporary folder), so a loaded machine slows them alike. Printed per lab: the median
seconds of each and their ratio (the target is at most 2.5x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BARE = [sys.executable, "-c", "import torch, numpy, matplotlib.pyplot"]


def _notebook(lab: str, where: Path) -> Path:
    """The released notebook with the model solution in its solution cells."""
    from grader.course import demo

    dest = where / lab / f"{lab}.ipynb"
    demo.write_submission(ROOT / "assignments" / lab / f"{lab}.ipynb", dest, demo.solution_sources(lab))
    return dest


def _timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lab", action="append", help="a lab id (default: lab321 and lab322)")
    a = p.parse_args()
    labs = a.lab or ["lab321", "lab322"]
    with tempfile.TemporaryDirectory(prefix="bench-selfcheck-") as tmp:
        tmp = Path(tmp)
        books = {lab: _notebook(lab, tmp) for lab in labs}
        check = {lab: [str(ROOT / "lab"), "check", "-q", "-p", "no:cacheprovider", str(nb)]
                 for lab, nb in books.items()}
        bare: list[float] = []
        took: dict[str, list[float]] = {lab: [] for lab in labs}
        _timed(BARE, tmp)  # warm the file cache once, for both alike
        for _ in range(a.rounds):
            bare.append(_timed(BARE, tmp))
            for lab in labs:
                took[lab].append(_timed(check[lab], tmp))
    b = statistics.median(bare)
    print(f"bare import torch, numpy, matplotlib.pyplot: {b:.2f} s (median of {a.rounds})")
    for lab in labs:
        s = statistics.median(took[lab])
        print(f"{lab}: self-check of the model solution {s:.2f} s = {s / b:.2f}x the bare import "
              f"(median of {a.rounds}; target <= 2.5x)")


if __name__ == "__main__":
    main()
