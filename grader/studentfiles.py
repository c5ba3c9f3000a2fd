"""Where student-supplied files live, and which of them Python or pytest would run.

A submission is data: the grader reads its notebook as JSON and runs the notebook's cells only
in the sandbox. Every other file a student sends (a ``conftest.py``, a ``pytest.ini`` whose
``addopts`` load a plugin, a ``sitecustomize.py``, a ``.pth`` file, a ``course_config.py``) is
never copied by nbgrader (``NOT_COPIED`` is part of ``c.CourseDirectory.ignore``), never read
as configuration, imported or run by a command of the course. This module says where such
files are. It imports only the standard library: pytest's self-check consults it before it
imports anything else.

Submission folders (nbgrader's names):

* ``submitted/`` and ``autograded/``, anywhere;
* ``feedback/`` and ``downloaded/`` (LMS zips) of a course (a folder holding
  ``nbgrader_config.py`` or ``course_config.py``);
* ``inbound/`` and ``feedback/`` of an exchange (below a folder named ``exchange``).
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import Iterable, Optional

ANYWHERE = ("submitted", "autograded")
IN_COURSE = ("feedback", "downloaded")
IN_EXCHANGE = ("inbound", "feedback")
COURSE_FILES = ("nbgrader_config.py", "course_config.py")

# Files that act as code or configuration when Python or pytest finds them in a folder.
ACTIVE = ("*.py", "*.pyc", "*.pyd", "*.so", "*.pth", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg",
          "pyproject.toml")
# What nbgrader never copies out of a submission (c.CourseDirectory.ignore); nbgrader's own
# defaults (.ipynb_checkpoints, __pycache__, feedback) stay in course_config.py.
NOT_COPIED = list(ACTIVE)
# The folders a walk never enters: they hold no submission, and can be huge.
_PRUNE = {".git", ".venv", "venv", "node_modules", "__pycache__", ".ipynb_checkpoints", ".hypothesis",
          ".pytest_cache", "site-packages"}
_WALK_LIMIT = 50_000  # entries; past it a walk counts as touching a submission (the safe answer)


def _is_course(folder: Path) -> bool:
    return any((folder / name).is_file() for name in COURSE_FILES)


def submission_root(path: os.PathLike | str) -> Optional[Path]:
    """The outermost submission folder holding ``path`` (or ``path`` itself), else None."""
    p = Path(os.path.abspath(path))
    chain = [*reversed(p.parents), p]
    for i, d in enumerate(chain):
        name = d.name
        if name in ANYWHERE:
            return d
        if name in IN_COURSE and _is_course(d.parent):
            return d
        if name in IN_EXCHANGE and any(a.name == "exchange" for a in chain[:i]):
            return d
    return None


def in_submission(path: os.PathLike | str) -> bool:
    return submission_root(path) is not None


def is_active(name: str) -> bool:
    """Whether a file of this name would be run or read as configuration by Python or pytest."""
    return any(fnmatch.fnmatchcase(name, pat) for pat in ACTIVE)


def trusted_parents(path: os.PathLike | str) -> list[Path]:
    """The folders above ``path``, nearest first, that no student could have created."""
    return [d for d in Path(os.path.abspath(path)).parents if not in_submission(d)]


def scan(paths: Iterable[os.PathLike | str]) -> tuple[list[Path], bool]:
    """Student files that would act as code or configuration in or near ``paths``.

    Returns (files, touched): ``touched`` says whether any path lies in, or holds, a submission
    folder. A path inside a submission also brings the files of the folders above it up to the
    submission folder (pytest loads a conftest.py from each of them)."""
    found: set[Path] = set()
    touched = False
    seen = 0
    for raw in paths:
        p = Path(os.path.abspath(raw))
        if not p.exists():
            continue
        root = submission_root(p)
        if root is not None:
            touched = True
            for d in [p.parent, *p.parent.parents] if p.is_file() else [p, *p.parents]:
                if not d.is_relative_to(root):
                    break
                found.update(f for f in _files(d) if is_active(f.name))
        if not p.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = [d for d in dirnames if d not in _PRUNE]
            seen += len(dirnames) + len(filenames)
            if seen > _WALK_LIMIT:
                return sorted(found), True
            here = Path(dirpath)
            if root is None and not in_submission(here):
                continue
            touched = True
            found.update(here / f for f in filenames if is_active(f))
    return sorted(found), touched


def _files(folder: Path) -> list[Path]:
    try:
        return [f for f in folder.iterdir() if f.is_file()]
    except OSError:
        return []


def import_path_in_submissions() -> list[str]:
    """Entries of sys.path inside a submission folder ('' is the current folder)."""
    out = []
    for entry in sys.path:
        where = entry or os.getcwd()
        if isinstance(where, str) and in_submission(where):
            out.append(where)
    return out


def imported_from_submissions() -> list[str]:
    """Files of modules already imported into this process from a submission folder."""
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and in_submission(f):
            out.append(f)
    return sorted(set(out))


def shown(paths: Iterable[os.PathLike | str], here: os.PathLike | str, most: int = 6) -> str:
    """'a, b, c and 2 more', each path relative to ``here`` when below it."""
    items = []
    for p in paths:
        try:
            items.append(str(Path(p).relative_to(here)))
        except ValueError:
            items.append(str(p))
    more = len(items) - most
    return ", ".join(items[:most]) + (f" and {more} more" if more > 0 else "")


__all__ = ["ACTIVE", "NOT_COPIED", "imported_from_submissions", "import_path_in_submissions", "in_submission",
           "is_active", "scan", "shown", "submission_root", "trusted_parents"]
