"""Course settings, read from the course's ``course_config.py`` (an nbgrader config file).

``course_config.py`` sets nbgrader's options and ours under ``c.LabGrader``:

    c.LabGrader.hidden_seed = "..."        # change per term: it determines the hidden inputs
    c.LabGrader.min_isolation = "namespaces"  # refuse to grade below this level (a laptop TA may lower it)
    c.LabGrader.isolation = "namespaces"   # what to try first
    c.LabGrader.call_timeout = 10          # seconds per graded call; also cell_timeout, memory_mb
    c.LabGrader.worker_imports = [...]     # modules every notebook needs (imported once per grading run)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .sandbox import LEVELS, WORKER_IMPORTS, Limits, best_level

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAME = "course_config.py"


@dataclass
class Settings:
    course_root: Path
    hidden_seed: str = "lab321"
    min_isolation: str = "namespaces"
    isolation: str = field(default_factory=best_level)
    limits: Limits = field(default_factory=Limits)
    assignment: str = "lab321"
    device: str = "cpu"  # where the student's functions get their tensors (device-check uses "cuda")
    worker_imports: tuple = WORKER_IMPORTS  # imported once per run by the warm parent; a missing one stops grading


def find_course_root(start: Optional[Path] = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding course_config.py."""
    here = Path(start or os.getcwd()).resolve()
    for p in (here, *here.parents):
        if (p / CONFIG_NAME).is_file():
            return p
    return REPO_ROOT


def load(root: Optional[Path] = None) -> Settings:
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root) if root else find_course_root()
    s = Settings(course_root=root)
    path = root / CONFIG_NAME
    if not path.is_file():
        return s
    cfg = PyFileConfigLoader(CONFIG_NAME, path=str(root)).load_config()
    lg = cfg.get("LabGrader", {})
    s.hidden_seed = str(lg.get("hidden_seed", s.hidden_seed))
    s.assignment = str(lg.get("assignment", s.assignment))
    for key in ("min_isolation", "isolation"):
        if key in lg:
            if lg[key] not in LEVELS:
                raise ValueError(f"{path}: LabGrader.{key} = {lg[key]!r}; choose one of {', '.join(LEVELS)}")
            setattr(s, key, lg[key])
    if "worker_imports" in lg:
        s.worker_imports = tuple(str(m) for m in lg["worker_imports"])
    env_min = os.environ.get("LAB_MIN_ISOLATION")
    if env_min:
        if env_min not in LEVELS:
            raise ValueError(f"LAB_MIN_ISOLATION={env_min!r}; choose one of {', '.join(LEVELS)}")
        s.min_isolation = env_min
    lim = {}
    for key in ("call_timeout", "cell_timeout", "notebook_timeout", "notebook_budget"):
        if key in lg:
            lim[key] = float(lg[key])
    if "memory_mb" in lg:
        lim["memory_bytes"] = int(lg["memory_mb"]) << 20
    s.limits = Limits(**lim)
    return s
