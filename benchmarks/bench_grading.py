"""Per-notebook cost of grading: the old execution model against the new one, in one run.

    .venv/bin/python benchmarks/bench_grading.py [--notebooks 6] [--old be1bdac]

Baseline ("old"): the execution model of commit ``--old`` (a fresh ``python -I`` worker per
notebook that imports torch itself, every graded call a fork of it), loaded from git into this
run. New: one warm zygote per grading run (torch imported once), a keeper per notebook, calls
in the notebook process. Both grade the same model-solution notebooks with every check, one
after another, at the 'namespaces' level, on this machine. Also printed: nbclient executing the
notebook in a fresh ipykernel (what nbgrader's Execute preprocessor does), for scale.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    """The old grader/sandbox.py and worker_src.py from git, as a module of this process."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-old-"))
    for name in ("sandbox.py", "worker_src.py"):
        src = subprocess.run(["git", "show", f"{commit}:grader/{name}"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        (tmp / name).write_text(src)
    spec = importlib.util.spec_from_file_location("legacy_sandbox", tmp / "sandbox.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["legacy_sandbox"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def old_model_grade(old, grade_mod, cells, settings):
    """grade_cells with the old Sandbox behind it (same checks, same scoring code)."""
    from grader.sandbox import StudentError

    class OldSandbox(old.Sandbox):
        def __init__(self, cells, *, allow_fallback=True, imports=None, **kw):
            super().__init__(cells, **kw)

        def wait_ready(self):
            run = super().wait_ready()
            run.fault, run.restarts = None, 0
            return run

        def _request(self, *a):
            try:
                return super()._request(*a)
            except old.StudentError as exc:
                raise StudentError(str(exc), from_student=True) from None

    real = grade_mod.Sandbox
    grade_mod.Sandbox = OldSandbox
    try:
        return grade_mod.grade_cells(cells, settings=settings)
    finally:
        grade_mod.Sandbox = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", type=int, default=6)
    ap.add_argument("--old", default="be1bdac", help="commit whose execution model is the baseline")
    a = ap.parse_args()

    import nbformat
    from nbclient import NotebookClient

    from grader import config
    from grader.grading import grade as grade_mod
    from grader.grading.nbfile import read_cells

    cells = read_cells(NB)
    settings = config.load(ROOT)
    old = legacy_sandbox(a.old)

    totals = {}

    def series(fn, label):
        out = []
        for _ in range(a.notebooks):
            t = time.perf_counter()
            r = fn()
            out.append(time.perf_counter() - t)
            totals.setdefault(label, set()).add((r.total, r.max_total))
        return out

    print(f"{a.notebooks} model-solution notebooks graded one after another (all checks), this machine")
    old_t = series(lambda: old_model_grade(old, grade_mod, cells, settings), "old")
    new_t = series(lambda: grade_mod.grade_cells(cells, settings=settings), "new")
    assert totals["new"] == {(totals["new"].copy().pop()[1],) * 2}, totals  # the new model: full marks
    t = time.perf_counter()
    NotebookClient(nbformat.read(NB, as_version=4), timeout=120, kernel_name="python3", allow_errors=True).execute()
    nbclient = time.perf_counter() - t

    rows = [
        (f"old model ({a.old}): worker per notebook, fork per call", statistics.mean(old_t), old_t[0]),
        ("new model: warm zygote, keeper per notebook, calls in-process", statistics.mean(new_t), new_t[0]),
    ]
    print(f"{'model':<64}{'mean s/notebook':>16}{'first':>8}{'rest':>8}")
    for name, mean, first in rows:
        rest = (mean * a.notebooks - first) / max(1, a.notebooks - 1)
        print(f"{name:<64}{mean:>16.2f}{first:>8.2f}{rest:>8.2f}")
    print(f"new / old per notebook: {statistics.mean(new_t) / statistics.mean(old_t):.2f}x "
          f"(after the first: {statistics.mean(new_t[1:]) / statistics.mean(old_t[1:]):.2f}x)")
    print("scores (total, max): " + ", ".join(f"{k} {sorted(v)}" for k, v in totals.items())
          + " (the old worker predates some of today's checks)")
    print(f"for scale: nbclient + ipykernel running the cells once, no checks, no isolation: {nbclient:.2f} s")


if __name__ == "__main__":
    main()
