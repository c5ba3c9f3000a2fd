"""Course settings, read from the course's ``course_config.py`` (an nbgrader config file).

``course_config.py`` sets nbgrader's options and ours under ``c.LabGrader`` (the traits of
:class:`LabGrader` below; ``python -m grader config`` or ``./lab nbgrader --help-all`` lists them):

    c.LabGrader.hidden_seed = "..."        # change per term: it determines the hidden inputs
    c.LabGrader.min_isolation = "namespaces"  # refuse to grade below this level (a laptop TA may lower it)
    c.LabGrader.isolation = "namespaces"   # what to try first
    c.LabGrader.call_timeout = 10          # seconds per graded call; also cell_timeout, memory_mb
    c.LabGrader.worker_imports = [...]     # modules every notebook needs (imported once per grading run)

Inside nbgrader, ``--LabGrader.x=value`` on the command line overrides the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from traitlets import Enum, Float, Int, List, Unicode
from traitlets.config import Configurable

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
    assignment: str = ""  # deprecated (LabGrader.assignment): the lab when no assignment id is known
    device: str = "cpu"  # where the student's functions get their tensors (device-check uses "cuda")
    worker_imports: tuple = WORKER_IMPORTS  # imported once per run by the warm parent; a missing one stops grading
    jobs: int = 0  # notebooks graded side by side (0: LAB_GRADER_JOBS or min(4, cores))


class LabGrader(Configurable):
    """The trusted grader's settings (c.LabGrader.* in course_config.py, --LabGrader.*= on nbgrader's command line)."""

    hidden_seed = Unicode("lab321", help="Seed of the hidden inputs. Change it every term: it determines the "
                          "hidden checks' inputs, so regrading gives the same scores.").tag(config=True)
    assignment = Unicode("", help="Deprecated: the lab graded where no assignment id is known (nbgrader's assignment "
                         "id or the command's argument names the lab; a course with one lab needs nothing).").tag(config=True)
    isolation = Enum(list(LEVELS), default_value=None, allow_none=True,
                     help="Isolation level tried first: namespaces (root or user namespaces), process, none. "
                     "Default: the strongest this machine can probably give.").tag(config=True)
    min_isolation = Enum(list(LEVELS), default_value="namespaces",
                         help="Refuse to grade below this isolation level (exit 3). A TA laptop without namespaces "
                         "may lower it to 'process' (or set LAB_MIN_ISOLATION=process).").tag(config=True)
    call_timeout = Float(10.0, help="Seconds per call of a student's function.").tag(config=True)
    cell_timeout = Float(60.0, help="Seconds per notebook cell.").tag(config=True)
    notebook_timeout = Float(180.0, help="Seconds for all cells together, per run of them.").tag(config=True)
    notebook_budget = Float(90.0, help="Seconds per notebook for everything (cells, re-runs, calls); an honest "
                            "notebook needs 1-3 s. When used up, the remaining checks fail as 'not run'.").tag(config=True)
    memory_mb = Int(4096, help="Memory limit of a notebook's whole process tree, in MiB (swap included).").tag(config=True)
    worker_imports = List(Unicode(), default_value=list(WORKER_IMPORTS),
                          help="Modules every notebook needs, imported once per grading run by the zygote; a "
                          "missing one stops grading (environment fault, exit 3).").tag(config=True)
    jobs = Int(0, help="Notebooks graded side by side (0: LAB_GRADER_JOBS, else min(4, CPU cores)).").tag(config=True)


def find_course_root(start: Optional[Path] = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding course_config.py, never one in a
    submission folder (a course_config.py a student sent is data, never run: grader/studentfiles.py)."""
    from .studentfiles import in_submission

    here = Path(start or os.getcwd()).resolve()
    for p in (here, *here.parents):
        if (p / CONFIG_NAME).is_file() and not in_submission(p):
            return p
    return REPO_ROOT


def _command_line_config() -> dict:
    """``--LabGrader.x=`` given to the traitlets application we run in (nbgrader), if any."""
    try:
        from traitlets.config import Application

        if not Application.initialized():
            return {}
        cli = getattr(Application.instance(), "cli_config", None) or {}
        return dict(cli.get("LabGrader", {}))
    except Exception:  # noqa: BLE001 - no application, or an odd one: the file decides
        return {}


def course_config(root: Path):
    """The traitlets Config of the course's course_config.py (empty when it has none)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if not (Path(root) / CONFIG_NAME).is_file():
        return Config()
    return PyFileConfigLoader(CONFIG_NAME, path=str(root)).load_config()


def describe(root: Path, classes: list) -> str:
    """Each setting of ``classes`` as the course sets it, next to its default and help (``python -m grader config``)."""
    import textwrap

    cfg = course_config(root)
    where = root / CONFIG_NAME
    source = f"settings from {CONFIG_NAME}" if where.is_file() else f"no {CONFIG_NAME}: defaults"
    lines = [f"course: {root} ({source})"]
    for cls in classes:
        try:
            obj = cls(config=cfg)
        except Exception as exc:  # a bad value: one line naming the file
            raise ValueError(f"{where}: {exc}") from None
        lines += ["", f"{cls.__name__} (c.{cls.__name__}.* in {CONFIG_NAME}; --{cls.__name__}.x=... on nbgrader's "
                  "command line):"]
        for name, trait in sorted(cls.class_traits(config=True).items()):
            value, default = getattr(obj, name), trait.default()
            said = "  (the default)" if value == default else f"  (default: {default!r})"
            lines.append(f"  {name} = {value!r}{said}")
            if trait.help:
                lines += textwrap.wrap(" ".join(trait.help.split()), 100, initial_indent="      ",
                                       subsequent_indent="      ")
    return "\n".join(lines)


def lab_grader(root: Path, overrides: Optional[dict] = None) -> LabGrader:
    """The course's LabGrader configurable: course_config.py, then command-line overrides."""
    from traitlets.config import Config

    path = root / CONFIG_NAME
    cfg = course_config(root)
    extra = {**_command_line_config(), **(overrides or {})}
    if extra:
        cfg.merge(Config({"LabGrader": extra}))
    try:
        return LabGrader(config=cfg)
    except Exception as exc:  # a bad value: one line naming the file
        raise ValueError(f"{path}: {exc}") from None


def load(root: Optional[Path] = None, overrides: Optional[dict[str, Any]] = None) -> Settings:
    root = Path(root) if root else find_course_root()
    s = Settings(course_root=root)
    if not (root / CONFIG_NAME).is_file() and not overrides and not _command_line_config():
        return s
    lg = lab_grader(root, overrides)
    s.hidden_seed = lg.hidden_seed
    s.assignment = lg.assignment
    s.min_isolation = lg.min_isolation
    if lg.isolation is not None:
        s.isolation = lg.isolation
    s.worker_imports = tuple(lg.worker_imports)
    s.jobs = lg.jobs
    env_min = os.environ.get("LAB_MIN_ISOLATION")
    if env_min:
        if env_min not in LEVELS:
            raise ValueError(f"LAB_MIN_ISOLATION={env_min!r}; choose one of {', '.join(LEVELS)}")
        s.min_isolation = env_min
    s.limits = Limits(call_timeout=lg.call_timeout, cell_timeout=lg.cell_timeout,
                      notebook_timeout=lg.notebook_timeout, notebook_budget=lg.notebook_budget,
                      memory_bytes=lg.memory_mb << 20)
    return s
