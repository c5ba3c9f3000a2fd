"""The main job: build a demo course, autograde typical submissions with nbgrader, print scores.

For every lab of the course (or ``--lab ID``), steps printed as they run:
  1. copy the course (course_config.py, nbgrader_config.py, the lab's source/) into a fresh folder
  2. nbgrader generate_assignment <lab> --force
  3. write submissions: the model solution, the untouched stubs, and the lab's typical mistakes (Lab.mistakes)
  4. nbgrader autograde <lab>          (trusted grading: sandbox + hidden checks)
  5. nbgrader generate_feedback <lab>
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



def _lab(lab=None):
    """A Lab, an id, or None (the course's only lab)."""
    from .. import config
    from ..grading.labs import resolve

    return resolve(lab, config.load(config.find_course_root()))


def solution_cells(nb) -> list:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def solution_sources(lab=None) -> dict[str, str]:
    """grade_id -> source of the model solution's solution cells (what the demo's mistakes edit)."""
    from .. import config

    nb = nbformat.read(_lab(lab).model_solution(config.find_course_root()), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution_cells(nb)}


def submissions(lab=None) -> dict[str, tuple[str, dict[str, str] | None]]:
    """student id -> (description, replacement sources for solution cells; None = untouched stubs)."""
    lab = _lab(lab)
    sol = solution_sources(lab)
    subs: dict[str, tuple[str, dict[str, str] | None]] = {
        "model_solution": ("the model solution", sol),
        "untouched_stubs": ("the released notebook, stubs untouched", None),
    }
    for sid, (desc, fn) in lab.mistakes.items():
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


def copy_course(dest: Path, labs=None, root: Path | None = None) -> None:
    """A new course folder with the course's config and each lab's source folder (and its labs/ folder
    when the lab lives in the course rather than in an installed package)."""
    from .. import config
    from ..grading.labs import all_labs, installed

    root = Path(root or config.find_course_root())
    found = all_labs(root)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(root / name, dest / name)
    for lab in (found[x] if isinstance(x, str) else x for x in (labs or found)):
        src = lab.model_solution(root).parent
        shutil.copytree(src, dest / src.relative_to(root), dirs_exist_ok=True)
        if (root / "labs" / lab.id / "__init__.py").is_file() and not installed(lab):  # a lab of the course folder
            shutil.copytree(root / "labs" / lab.id, dest / "labs" / lab.id, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))


def nbgrader(course: Path, *args: str, log: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    with open(log, "ab") as f:
        p = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, stdout=f, stderr=f)
    if p.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed (exit {p.returncode}); see {log}")


def gradebook_scores(course: Path, lab=None) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    lab = _lab(lab)
    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(lab.notebook_name, lab.id, student.id)
            except Exception:  # noqa: BLE001 - not submitted
                continue
            out[student.id] = {g.name: float(g.auto_score or 0.0) for g in nb.grades if g.max_score > 0}
    return out


def run_demo(where: Path | None = None, keep: bool = False, lab: str | None = None) -> int:
    """Build a demo course, autograde each lab's sample submissions with nbgrader, print the scores."""
    from .. import config
    from ..grading.labs import all_labs, get_lab

    root = config.find_course_root()
    labs = [get_lab(lab, root)] if lab else list(all_labs(root).values())
    ok = True
    for i, one in enumerate(labs):
        if len(labs) > 1:
            print(f"{'' if i == 0 else chr(10)}== {one.id}: {one.title} ==")
        sub = Path(where) / one.id if where and len(labs) > 1 else where
        ok &= _demo_lab(one, root, sub, keep) == 0
    return 0 if ok else 1


def _demo_lab(lab, root: Path, where: Path | None, keep: bool) -> int:
    from ..grading.grade import grade_path

    LAB = lab.id
    t0 = time.monotonic()
    course = Path(where) if where else Path(tempfile.mkdtemp(prefix=f"{LAB}-demo-"))
    if where and course.exists():
        shutil.rmtree(course)
    log = course / "nbgrader.log"
    step = lambda n, text: print(f"[{n}/6] {text}", flush=True)  # noqa: E731
    step(1, f"building the demo course in {course}")
    copy_course(course, [lab], root)
    step(2, f"nbgrader generate_assignment {LAB} --force")
    nbgrader(course, "generate_assignment", LAB, "--force", log=log)
    release = course / "assignments" / LAB / f"{lab.notebook_name}.ipynb"
    subs = submissions(lab)
    step(3, f"writing {len(subs)} submissions: model solution, untouched stubs, {len(lab.mistakes)} typical mistakes")
    for sid, (_, sources) in subs.items():
        write_submission(release, course / "submitted" / sid / LAB / f"{lab.notebook_name}.ipynb", sources)
    step(4, f"nbgrader autograde {LAB} (the model solution first, as a canary; then each notebook in the sandbox; "
            f"log: {log})")
    t = time.monotonic()
    nbgrader(course, "autograde", LAB, "--force", log=log)
    autograde_s = time.monotonic() - t
    step(5, f"nbgrader generate_feedback {LAB}")
    nbgrader(course, "generate_feedback", LAB, "--force", log=log)
    step(6, "reading the gradebook and regrading each notebook with `python -m grader grade`")
    book = gradebook_scores(course, lab)
    from concurrent.futures import ThreadPoolExecutor

    from .. import config

    settings = config.load(course)
    paths = {sid: course / "submitted" / sid / LAB / f"{lab.notebook_name}.ipynb" for sid in subs}
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        reports = dict(zip(paths, pool.map(lambda p: grade_path(p, settings=settings, lab=lab), paths.values())))
    print()
    CONTRACT = lab.exercises.contract
    order = sorted(CONTRACT, key=lambda k: CONTRACT[k].order)
    widths = {k: max(len(k), 4) + 2 for k in order}
    name_w = max(24, *(len(sid) + 1 for sid in subs))
    print(f"{'student':<{name_w}}" + "".join(f"{k:>{widths[k]}}" for k in order) + f"{'total':>8}  agree  what it is")
    agree_all = True
    for sid, (desc, _) in subs.items():
        nbg = book.get(sid, {})
        rep = reports[sid]
        mine = {k: e.score for k, e in rep.exercises.items()}
        agree = all(abs(nbg.get(k, -1) - v) < 1e-9 for k, v in mine.items())
        agree_all &= agree
        print(f"{sid:<{name_w}}" + "".join(f"{nbg.get(k, 0):>{widths[k]}g}" for k in order)
              + f"{sum(nbg.values()):>8g}  {'yes' if agree else 'NO '}    {desc}")
    canary = next((line.split("lab-grader: ", 1)[1] for line in log.read_text(errors="replace").splitlines()
                   if "lab-grader: canary:" in line), "canary: no line in the log")
    maxes = ", ".join(f"{k} {CONTRACT[k].points:g}" for k in order)
    total = sum(CONTRACT[k].points for k in order)
    print(f"\nmax: {maxes} = {total:g}. Isolation: {rep.isolation}. {canary[0].upper() + canary[1:]}.")
    print(f"autograde of {len(subs)} submissions took {autograde_s:.1f} s; whole demo {time.monotonic() - t0:.1f} s")
    if keep or where:
        print(f"feedback for each student: {course / 'feedback'}/<student>/{LAB}/{lab.notebook_name}.html")
    else:
        shutil.rmtree(course, ignore_errors=True)
        print("(demo folder removed; add --keep or --dir DIR to look at the feedback)")
    return 0 if agree_all else 1
