"""Labs as plug-ins: one :class:`Lab` object per lab, found by its id.

A lab declares its id, title, exercises (its own :class:`~grader.grading.checks.Registry` of
checks), its trusted code (answers and checks: masked in the sandbox), the instructor notebook
(also the model solution, graded first as the canary), its demo mistakes and any GPU lanes of
its own. The framework never imports a lab by name: it looks a lab up by nbgrader's assignment
id (``resources["nbgrader"]["assignment"]``) or the id given on the command line.

Labs are found in two ways, in this order:

1. the entry-point group ``lab_grader.labs`` of any installed distribution, e.g. in
   ``pyproject.toml``::

       [project.entry-points."lab_grader.labs"]
       lab321 = "labs.lab321:LAB"

2. the folder convention: ``<course>/labs/<id>/__init__.py`` defining ``LAB`` (the course folder
   is the one holding ``course_config.py``), so a course adds a lab without installing anything.

An unknown id is an error that lists the known ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from ..sandbox import client as _sandbox
from .checks import Registry

ENTRY_POINT_GROUP = "lab_grader.labs"
LABS_FOLDER = "labs"


@dataclass(frozen=True)
class Lab:
    """One lab of a course, declared once in its package's ``__init__.py`` as ``LAB``."""

    id: str  # nbgrader's assignment id, the release folder's and the notebook's name
    title: str
    exercises: Registry  # the lab's checks: LAB_CHECKS = Registry(id); @LAB_CHECKS.check(...)
    trusted: tuple[str, ...] = ()  # modules (or folders) of trusted code, masked in the sandbox; the
    #                                lab's own package is always added
    notebook: str = ""  # instructor notebook relative to the course root (default source/<id>/<id>.ipynb)
    mistakes: Mapping[str, tuple[str, Callable[[dict], dict]]] = field(default_factory=dict)  # demo mistakes:
    #   student id -> (what it is, edit of {grade_id: source} of the model solution's solution cells)
    lanes: tuple = ()  # GPU lanes of this lab's own (device-check), if any
    worker_imports: tuple[str, ...] = ()  # modules its notebook needs besides the course's worker_imports
    warm: Optional[Callable[[Any], None]] = None  # warm(stop): computes (and caches) what the public checks
    #   compare with, trusted code only, returning early once the threading.Event `stop` is set: the
    #   self-check runs it in a background thread while the notebook runs

    def __post_init__(self):
        if self.exercises.lab != self.id:
            raise ValueError(f"lab {self.id!r}: its registry is {self.exercises.lab!r}; create it as Registry({self.id!r})")
        self.exercises.validate()

    @property
    def notebook_path(self) -> str:
        return self.notebook or f"source/{self.id}/{self.id}.ipynb"

    @property
    def notebook_name(self) -> str:
        """The notebook's name inside nbgrader's assignment folder (without .ipynb)."""
        return Path(self.notebook_path).stem

    def model_solution(self, course_root: Path) -> Path:
        return Path(course_root) / self.notebook_path


class UnknownLab(LookupError):
    """No lab of that id is registered (entry point) or in the course's labs/ folder."""


_LOCK = threading.RLock()
_FOUND: dict[str, dict[str, Lab]] = {}  # course root -> id -> Lab


def _entry_point_labs() -> dict[str, Lab]:
    out = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        lab = ep.load()
        _check_is_lab(lab, f"entry point {ep.name} = {ep.value}")
        if lab.id != ep.name:
            raise ValueError(f"entry point {ep.name} = {ep.value} declares lab {lab.id!r}; name the entry point {lab.id!r}")
        out[lab.id] = lab
        _HOMES[id(lab)] = Path(getattr(sys.modules.get(ep.module), "__file__", "") or "").resolve().parent
    return out


_HOMES: dict[int, Path] = {}  # id(lab) -> the folder of the package that declares it (labs/<id>/)


def lab_folder(lab: Lab) -> Optional[Path]:
    """The folder of the package that declares ``lab`` (``<course>/labs/<id>/``), as found; None if unknown."""
    return _HOMES.get(id(lab))


def _folder_labs(course_root: Path) -> dict[str, Lab]:
    """``<course>/labs/<id>/__init__.py`` defining LAB, imported as module ``labs.<id>``."""
    out = {}
    folder = Path(course_root) / LABS_FOLDER
    if not folder.is_dir():
        return out
    for init in sorted(folder.glob("*/__init__.py")):
        lab_id = init.parent.name
        name = f"{LABS_FOLDER}.{lab_id}"
        mod = sys.modules.get(name)
        if mod is None or Path(getattr(mod, "__file__", "") or "").resolve() != init.resolve():
            if mod is not None:
                raise ValueError(f"lab {lab_id!r} is both {init} and {mod.__file__}; remove one")
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        lab = getattr(mod, "LAB", None)
        _check_is_lab(lab, str(init))
        if lab.id != lab_id:
            raise ValueError(f"{init}: LAB.id is {lab.id!r}, the folder is {lab_id!r}; they must be the same")
        out[lab.id] = lab
        _HOMES[id(lab)] = init.resolve().parent
    return out


def _check_is_lab(obj: Any, where: str) -> None:
    if not isinstance(obj, Lab):
        raise ValueError(f"{where}: expected a grader.grading.labs.Lab named LAB, got {type(obj).__name__}")


def installed(lab: Lab) -> bool:
    """Whether the lab comes from an installed distribution (its entry point), not only a course's labs/ folder."""
    return any(ep.name == lab.id for ep in entry_points(group=ENTRY_POINT_GROUP))


def all_labs(course_root: Optional[Path] = None) -> dict[str, Lab]:
    """Every lab of the course: installed ones (entry points), then the course's labs/ folder."""
    root = str(Path(course_root).resolve()) if course_root else ""
    with _LOCK:
        if root not in _FOUND:
            labs = _entry_point_labs()
            if root:
                for lab_id, lab in _folder_labs(Path(root)).items():
                    if lab_id in labs and labs[lab_id] is not lab:
                        raise ValueError(f"lab {lab_id!r} is installed and in {root}/labs/ as different code; "
                                         "remove one")
                    labs[lab_id] = lab
            for lab in labs.values():
                _sandbox.MASKS.update(trusted_paths(lab))  # every lab's trusted code is hidden from notebooks
            _FOUND[root] = labs
        return dict(_FOUND[root])


def get_lab(lab_id: str, course_root: Optional[Path] = None) -> Lab:
    labs = all_labs(course_root)
    if lab_id not in labs:
        known = ", ".join(sorted(labs)) or "none"
        raise UnknownLab(f"no lab {lab_id!r} in this course (known: {known}). A lab is an entry point in the "
                         f"group {ENTRY_POINT_GROUP!r} or a folder labs/{lab_id}/ with LAB in its __init__.py "
                         "(README: Add a lab)")
    return labs[lab_id]


def resolve(lab: Union[Lab, str, None], settings: Any = None) -> Lab:
    """A Lab from a Lab, an id, or nothing (the course's only lab, else the deprecated LabGrader.assignment)."""
    if isinstance(lab, Lab):
        return lab
    root = getattr(settings, "course_root", None)
    if lab:
        return get_lab(lab, root)
    labs = all_labs(root)
    default = getattr(settings, "assignment", "") or ""
    if default:
        return get_lab(default, root)
    if len(labs) == 1:
        return next(iter(labs.values()))
    raise UnknownLab(f"which lab? this course has {', '.join(sorted(labs)) or 'none'}: name one (--lab ID)")


def lab_for_notebook(path: Path, course_root: Optional[Path] = None,
                     grade_ids: Optional[Iterable[str]] = None) -> Lab:
    """The lab of a notebook: its file stem (lab321.ipynb, lab321-Copy1.ipynb), else its grade cells' ids."""
    labs = all_labs(course_root)
    stem = Path(path).stem
    for lab in labs.values():
        if stem == lab.notebook_name or stem.startswith(lab.notebook_name + "-") \
                or stem.startswith(lab.notebook_name + " "):
            return lab
    if grade_ids is None:
        grade_ids = _grade_ids(Path(path))
    ids = set(grade_ids)
    best = max(labs.values(), key=lambda lab: len(ids & set(lab.exercises.contract)), default=None)
    if best is not None and ids & set(best.exercises.contract):
        return best
    if len(labs) == 1:  # a course with one lab: any notebook is that lab's (a renamed or emptied one too)
        return next(iter(labs.values()))
    raise UnknownLab(f"{path}: no lab of this course ({', '.join(sorted(labs)) or 'none'}) matches the "
                     "notebook's name or its grade cells")


def _grade_ids(path: Path) -> list[str]:
    """The grade ids of a notebook file; [] for anything that is not a readable notebook (the grading
    path reports why, with its own checks on size and nesting)."""
    from .nbfile import MAX_NOTEBOOK_BYTES

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_NOTEBOOK_BYTES + 1)
        nb = json.loads(data) if len(data) <= MAX_NOTEBOOK_BYTES else {}
    except (OSError, ValueError, RecursionError):
        return []
    ids = []
    for c in nb.get("cells", []) if isinstance(nb, dict) else []:
        meta = c.get("metadata") if isinstance(c, dict) else None
        nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
        gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
        if isinstance(gid, str):
            ids.append(gid)
    return ids


def trusted_paths(lab: Lab) -> list[str]:
    """Folders (or files) of the lab's trusted code, from where its modules lie on disk."""
    out = []
    registry_mod = sys.modules.get(type(lab.exercises).__module__)
    names = list(lab.trusted) + [m.__name__ for m in _lab_modules(lab)]
    for name in names:
        if os.path.sep in name or name.endswith(".py"):
            out.append(str(Path(name).resolve()))
            continue
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
        if mod is registry_mod:
            continue
        locs = list(getattr(mod, "__path__", []) or [])
        if not locs and getattr(mod, "__file__", None):
            locs = [mod.__file__]
        out += [str(Path(p).resolve()) for p in locs]
    return sorted(set(out))


def _lab_modules(lab: Lab) -> list:
    """The package that defines the lab (the module whose LAB it is)."""
    return [m for m in list(sys.modules.values()) if getattr(m, "LAB", None) is lab]


__all__ = ["ENTRY_POINT_GROUP", "Lab", "Registry", "UnknownLab", "all_labs", "get_lab", "lab_for_notebook",
           "installed", "lab_folder", "resolve", "trusted_paths"]


def edit_cell(cell: str, old: str, new: str) -> Callable[[dict], dict]:
    """A demo mistake as an edit of the model solution: ``old`` replaced by ``new`` in solution cell ``cell``
    (``Lab.mistakes`` values take it). An ``old`` that is not there is an error, never a silent no-op."""
    def apply(sol: dict[str, str]) -> dict[str, str]:
        src = sol[cell]
        if old not in src:
            raise RuntimeError(f"demo mistake: {old!r} not found in {cell}")
        return {**sol, cell: src.replace(old, new)}
    return apply
