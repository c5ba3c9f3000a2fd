"""The main job: build a demo course, autograde typical submissions with nbgrader, print scores.

Steps (each printed as it runs):
  1. copy the course (course_config.py, nbgrader_config.py, source/) into a fresh folder
  2. nbgrader generate_assignment lab321 --force
  3. write submissions: the model solution, the untouched stubs, and typical mistakes
  4. nbgrader autograde lab321          (trusted grading: sandbox + hidden checks)
  5. nbgrader generate_feedback lab321
  6. read the gradebook, regrade each notebook with `python -m grader grade`, print the table
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .config import REPO_ROOT

LAB = "lab321"
SOLUTION_CELLS = ("memory_solution", "snr_solution", "snr_answer", "quantizer_solution", "weights_solution",
                  "advisor_solution")


def solution_sources() -> dict[str, str]:
    nb = nbformat.read(REPO_ROOT / "source" / LAB / f"{LAB}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") in SOLUTION_CELLS}


def _edit(cell: str, old: str, new: str):
    def apply(sol: dict[str, str]) -> dict[str, str]:
        src = sol[cell]
        if old not in src:
            raise RuntimeError(f"demo mistake: {old!r} not found in {cell}")
        return {**sol, cell: src.replace(old, new)}
    return apply


# Typical mistakes: each edits the model solution in one place.
MISTAKES = {
    "snr_20log10": ("SNR with 20*log10 of a power ratio", _edit("snr_solution", "10 * torch.log10", "20 * torch.log10")),
    "snr_amplitude": ("SNR as a ratio of amplitudes (RMS), not powers",
                      _edit("snr_solution", "original.pow(2).sum() / noise", "(original.pow(2).sum() / noise).sqrt()")),
    "snr_swapped": ("signal power taken from the quantized tensor",
                    _edit("snr_solution", "original.pow(2).sum() / noise", "quantized.pow(2).sum() / noise")),
    "memory_gib": ("memory in GiB (2**30 bytes) instead of GB",
                   _edit("memory_solution", '        table[p] = {"memory_gb": mem,',
                         '        mem = mem * 1e9 / 2**30\n        table[p] = {"memory_gb": mem,')),
    "memory_no_headroom": ("inference without the KV-cache headroom",
                           _edit("memory_solution", "mem = weights * 1.2", "mem = weights")),
    "memory_training_x4": ("training memory as weights x 4 (no FP32 master weights and moments)",
                           _edit("memory_solution", "mem = weights + params_billions * (2 + 4 + 8)", "mem = weights * 4")),
    "advisor_fp4_training": ("FP4 recommended for training",
                             _edit("advisor_solution", '"training": ("bf16", "fp8")', '"training": ("bf16", "fp4")')),
    "advisor_fp32_training": ("FP32 ranked above BF16 for training",
                              _edit("advisor_solution", '"training": ("bf16", "fp8")', '"training": ("fp32", "bf16", "fp8")')),
    "advisor_ignores_budget": ("the advisor ignores the memory budget",
                               _edit("advisor_solution", "if mem <= memory_budget_gb:", "if mem <= 128:")),
    "weights_per_tensor": ("INT8 with one scale per tensor, not per output channel",
                           _edit("weights_solution", "w.abs().amax(dim=1, keepdim=True) / 127", "w.abs().max() / 127")),
}


def submissions() -> dict[str, tuple[str, dict[str, str] | None]]:
    """student id -> (description, replacement sources for solution cells; None = untouched stubs)."""
    sol = solution_sources()
    subs: dict[str, tuple[str, dict[str, str] | None]] = {
        "model_solution": ("the model solution", sol),
        "untouched_stubs": ("the released notebook, stubs untouched", None),
    }
    for sid, (desc, fn) in MISTAKES.items():
        subs[sid] = (desc, fn(sol))
    return subs


def write_submission(release: Path, dest: Path, sources: dict[str, str] | None) -> None:
    nb = nbformat.read(release, as_version=4)
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if sources and gid in sources:
            c.source = sources[gid]
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)


def copy_course(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(REPO_ROOT / name, dest / name)
    shutil.copytree(REPO_ROOT / "source" / LAB, dest / "source" / LAB, dirs_exist_ok=True)


def nbgrader(course: Path, *args: str, log: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    with open(log, "ab") as f:
        p = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, stdout=f, stderr=f)
    if p.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed (exit {p.returncode}); see {log}")


def gradebook_scores(course: Path) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(LAB, LAB, student.id)
            except Exception:  # noqa: BLE001 - not submitted
                continue
            out[student.id] = {g.name: float(g.auto_score or 0.0) for g in nb.grades if g.max_score > 0}
    return out


def run_demo(where: Path | None = None, keep: bool = False) -> int:
    from .grade import grade_path

    t0 = time.monotonic()
    course = Path(where) if where else Path(tempfile.mkdtemp(prefix="lab321-demo-"))
    if where and course.exists():
        shutil.rmtree(course)
    log = course / "nbgrader.log"
    step = lambda n, text: print(f"[{n}/6] {text}", flush=True)  # noqa: E731
    step(1, f"building the demo course in {course}")
    copy_course(course)
    step(2, "nbgrader generate_assignment lab321 --force")
    nbgrader(course, "generate_assignment", LAB, "--force", log=log)
    release = course / "assignments" / LAB / f"{LAB}.ipynb"
    subs = submissions()
    step(3, f"writing {len(subs)} submissions: model solution, untouched stubs, {len(MISTAKES)} typical mistakes")
    for sid, (_, sources) in subs.items():
        write_submission(release, course / "submitted" / sid / LAB / f"{LAB}.ipynb", sources)
    step(4, f"nbgrader autograde lab321 (the model solution first, as a canary; then each notebook in the sandbox; "
            f"log: {log})")
    t = time.monotonic()
    nbgrader(course, "autograde", LAB, "--force", log=log)
    autograde_s = time.monotonic() - t
    step(5, "nbgrader generate_feedback lab321")
    nbgrader(course, "generate_feedback", LAB, "--force", log=log)
    step(6, "reading the gradebook and regrading each notebook with `python -m grader grade`")
    book = gradebook_scores(course)
    from concurrent.futures import ThreadPoolExecutor

    from . import config

    settings = config.load(course)
    paths = {sid: course / "submitted" / sid / LAB / f"{LAB}.ipynb" for sid in subs}
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        reports = dict(zip(paths, pool.map(lambda p: grade_path(p, settings=settings), paths.values())))
    print()
    from .checks import CONTRACT

    order = sorted(CONTRACT, key=lambda k: CONTRACT[k].order)
    widths = {k: max(len(k), 4) + 2 for k in order}
    print(f"{'student':<24}" + "".join(f"{k:>{widths[k]}}" for k in order) + f"{'total':>8}  agree  what it is")
    agree_all = True
    for sid, (desc, _) in subs.items():
        nbg = book.get(sid, {})
        rep = reports[sid]
        mine = {k: e.score for k, e in rep.exercises.items()}
        agree = all(abs(nbg.get(k, -1) - v) < 1e-9 for k, v in mine.items())
        agree_all &= agree
        print(f"{sid:<24}" + "".join(f"{nbg.get(k, 0):>{widths[k]}g}" for k in order)
              + f"{sum(nbg.values()):>8g}  {'yes' if agree else 'NO '}    {desc}")
    canary = next((line.split("lab-grader: ", 1)[1] for line in log.read_text(errors="replace").splitlines()
                   if "lab-grader: canary:" in line), "canary: no line in the log")
    maxes = ", ".join(f"{k} {CONTRACT[k].points:g}" for k in order)
    total = sum(CONTRACT[k].points for k in order)
    print(f"\nmax: {maxes} = {total:g}. Isolation: {rep.isolation}. {canary[0].upper() + canary[1:]}.")
    print(f"autograde of {len(subs)} submissions took {autograde_s:.1f} s; whole demo {time.monotonic() - t0:.1f} s")
    if keep or where:
        print(f"feedback for each student: {course / 'feedback'}/<student>/{LAB}/{LAB}.html")
    else:
        shutil.rmtree(course, ignore_errors=True)
        print("(demo folder removed; add --keep or --dir DIR to look at the feedback)")
    return 0 if agree_all else 1
