"""Grading time of Lab 3.2.2's model solution next to Lab 3.2.1's, measured in one run.

    .venv/bin/python benchmarks/bench_lab322_grading.py [--rounds 3]

Each round grades both instructor notebooks (every check, public and hidden) with ``grade_path``, the
core of every grading path, alternating the labs so a loaded machine slows both alike. Printed per lab:
the median seconds per notebook, of which the checks (the calls into the notebook plus the reference's
forward passes), and the ratio lab322 / lab321.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    import torch

    import grader.grading.grade as G

    torch.set_num_threads(1)
    check_time = {"t": 0.0}
    run_check = G.run_check

    def timed(sb, check, seed):
        t = time.perf_counter()
        try:
            return run_check(sb, check, seed)
        finally:
            check_time["t"] += time.perf_counter() - t

    G.run_check = timed
    results: dict[str, list[tuple[float, float]]] = {"lab321": [], "lab322": []}
    for _ in range(a.rounds):
        for lab in results:
            check_time["t"] = 0.0
            t = time.perf_counter()
            r = G.grade_path(ROOT / "source" / lab / f"{lab}.ipynb", lab=lab)
            results[lab].append((time.perf_counter() - t, check_time["t"]))
            assert r.total == r.max_total, f"{lab}: the model solution got {r.total} / {r.max_total}"
    med = {}
    for lab, runs in results.items():
        med[lab] = statistics.median(s for s, _ in runs)
        print(f"{lab}: {med[lab]:.2f} s per model solution (median of {len(runs)}; checks "
              f"{statistics.median(c for _, c in runs):.2f} s)")
    print(f"lab322 / lab321: {med['lab322'] / med['lab321']:.2f}x")


if __name__ == "__main__":
    main()
