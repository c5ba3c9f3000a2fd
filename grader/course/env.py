"""What ``course_config.py`` sets up in every process that loads it (nbgrader's commands, the formgrader).

* nbgrader runs ``alembic`` as a command when it creates a gradebook
  (``nbgrader.api.get_alembic_version``). Started by full path without activating the virtualenv
  (``.venv/bin/jupyter lab``, ``.venv/bin/nbgrader``, as JupyterHub spawners and systemd units
  start them), the process has no ``alembic`` on PATH: the formgrader answers 500 on a fresh
  course and ``nbgrader db`` fails. The interpreter's own bin folder goes first on PATH.
* nbgrader 0.9.6 under SQLAlchemy 2 warns ``SAWarning: Object of type <SubmittedAssignment> not in
  session, add operation along 'Student.submissions' will not proceed`` for every new submission
  (its autoflush meets an object it adds to its session a line later; the rows are written). Only
  that warning, from nbgrader's own module, is filtered.

Light (the standard library and SQLAlchemy's warning class): it runs whenever nbgrader reads the
course's configuration.
"""

from __future__ import annotations

import os
import sys
import warnings

COMMANDS = ("alembic",)  # what nbgrader runs by name
# nbgrader's known autoflush warnings (nbgrader/api.py), matched by message and module
_SA_MESSAGE = r"Object of type <Submitted(Assignment|Notebook)> not in session, add operation along "


def interpreter_bin() -> str:
    """The folder of this interpreter's console scripts (the virtualenv's bin)."""
    for d in (os.path.dirname(sys.executable), os.path.join(sys.prefix, "bin")):
        if all(os.path.isfile(os.path.join(d, c)) for c in COMMANDS):
            return d
    return os.path.dirname(sys.executable)


def put_interpreter_on_path() -> None:
    """Make the commands nbgrader runs (alembic) the ones installed next to this interpreter."""
    here = interpreter_bin()
    path = os.environ.get("PATH", "")
    if here not in path.split(os.pathsep):
        os.environ["PATH"] = here + (os.pathsep + path if path else "")


def quiet_known_warnings() -> None:
    """Filter the warnings nbgrader prints that no TA can act on (see the module's docstring)."""
    try:
        from sqlalchemy.exc import SAWarning
    except ImportError:  # no SQLAlchemy: nothing warns
        return
    warnings.filterwarnings("ignore", message=_SA_MESSAGE, category=SAWarning, module=r"nbgrader\.api")


def prepare_process() -> None:
    put_interpreter_on_path()
    quiet_known_warnings()


__all__ = ["prepare_process", "put_interpreter_on_path", "quiet_known_warnings"]
