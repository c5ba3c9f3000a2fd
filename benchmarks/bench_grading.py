"""Per-notebook cost of grading: the sandbox of an earlier commit against today's, in one run.

    .venv/bin/python benchmarks/bench_grading.py [--notebooks 6] [--old 3afac2a]

Baseline ("old"): ``grader/sandbox/`` of commit ``--old`` (by default the last one whose worker
was a string run with ``python -I -c``), loaded from git into this run as its own package with its
own warm zygote. New: today's ``grader/sandbox/`` (the worker package run as a file). Both sit
behind the same ``grade_cells`` (same checks, same scoring code: only the sandbox class differs),
grade the same model-solution notebook at this machine's strongest level, and alternate notebook by
notebook (old, new, old, new, ...) so that a busy moment of the machine costs both alike. The first
notebook of each includes starting its zygote; "rest" is the steady per-notebook cost. Also printed:
nbclient executing the notebook in a fresh ipykernel (what nbgrader's Execute preprocessor does), for
scale.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NB = ROOT / "source" / "lab321" / "lab321.ipynb"


def legacy_sandbox(commit: str):
    """``grader/sandbox/`` of ``commit`` (with the one grading module it imported then, if any) as the package
    ``legacy_grader.sandbox``, its exceptions replaced by today's so that grade_cells handles them."""
    from grader import sandbox as today

    tmp = Path(tempfile.mkdtemp(prefix="bench-old-"))
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit, "grader/sandbox/"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    older = "grader/grading/text.py"  # where the sandbox's text helper lived before it moved into the sandbox
    if subprocess.run(["git", "cat-file", "-e", f"{commit}:{older}"], cwd=ROOT, capture_output=True).returncode == 0:
        listing.append(older)
    for path in listing:
        if path.endswith(".py"):
            dst = tmp / "legacy_grader" / Path(path).relative_to("grader")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True,
                                          text=True, check=True).stdout)
    for pkg in ("", "grading"):
        (tmp / "legacy_grader" / pkg / "__init__.py").touch()
    sys.path.insert(0, str(tmp))
    old = importlib.import_module("legacy_grader.sandbox.client")
    for name in ("StudentError", "EnvironmentFault", "BudgetExceeded"):
        setattr(old, name, getattr(today, name))
    old.MASKS.update(today.client.MASKS)  # every lab's trusted code, as today's sandbox masks it
    return old


def grade_with(sandbox_cls, grade_mod, cells, settings):
    real = grade_mod.Sandbox
    grade_mod.Sandbox = sandbox_cls
    try:
        return grade_mod.grade_cells(cells, settings=settings, lab="lab321")
    finally:
        grade_mod.Sandbox = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", type=int, default=6)
    ap.add_argument("--old", default="3afac2a", help="commit whose grader/sandbox/ is the baseline")
    a = ap.parse_args()

    import nbformat
    from nbclient import NotebookClient

    from grader import config
    from grader.grading import grade as grade_mod
    from grader.grading import labs
    from grader.grading.nbfile import read_cells

    cells = read_cells(NB)
    settings = config.load(ROOT)
    grade_mod.resolve("lab321", settings)  # finds the labs: their trusted code joins the masks
    from grader.sandbox import Sandbox

    old = legacy_sandbox(a.old)
    times: dict[str, list[float]] = {"old": [], "new": []}
    totals: dict[str, set] = {"old": set(), "new": set()}
    print(f"{a.notebooks} model-solution notebooks each, old and new alternating (all checks), this machine")
    for _ in range(a.notebooks):
        for label, cls in (("old", old.Sandbox), ("new", Sandbox)):
            t = time.perf_counter()
            r = grade_with(cls, grade_mod, cells, settings)
            times[label].append(time.perf_counter() - t)
            totals[label].add((r.total, r.max_total))
    assert totals["old"] == totals["new"] and len(totals["new"]) == 1, totals
    t = time.perf_counter()
    NotebookClient(nbformat.read(NB, as_version=4), timeout=120, kernel_name="python3", allow_errors=True).execute()
    nbclient = time.perf_counter() - t

    rows = [(f"old ({a.old}): worker as a string, python -I -c", times["old"]),
            ("new: worker package run as a file, python -I main.py", times["new"])]
    print(f"{'sandbox':<56}{'mean s/notebook':>16}{'first':>8}{'rest':>8}{'rest median':>13}")
    for name, ts in rows:
        print(f"{name:<56}{statistics.mean(ts):>16.3f}{ts[0]:>8.3f}{statistics.mean(ts[1:] or ts):>8.3f}"
              f"{statistics.median(ts[1:] or ts):>13.3f}")
    rest = statistics.mean(times["new"][1:] or times["new"]) / statistics.mean(times["old"][1:] or times["old"])
    print(f"new / old per notebook after the first: {rest:.3f}x; "
          f"first (zygote start): {times['new'][0] / times['old'][0]:.3f}x")
    print(f"scores (total, max), both: {sorted(totals['new'])}")
    print(f"for scale: nbclient + ipykernel running the cells once, no checks, no isolation: {nbclient:.2f} s")


if __name__ == "__main__":
    main()
