"""The pytest plugin behind ``pytest assignments/``: public checks only, honest banner.

Every notebook under assignments/ is run once in the sandbox (shared by its tests); each
public check is one test. A stub that still raises NotImplementedError is reported as
"not implemented yet", a wrong answer as "wrong on <input>".
"""

from __future__ import annotations

from pathlib import Path

import pytest


_SESSIONS: dict[Path, object] = {}
_TALLY = {"passed": 0.0, "public": 0.0, "hidden": 0.0, "todo": 0, "wrong": 0}


def _launch(path: Path):
    """Start the notebook's sandbox at collection time, so it runs while pytest goes on."""
    from . import config
    from .nbfile import read_cells
    from .sandbox import Sandbox

    if path not in _SESSIONS:
        settings = config.load(path.parent)
        sb = Sandbox(read_cells(path), limits=settings.limits, level=settings.isolation,
                     course_root=settings.course_root)
        sb.launch()
        sb.hidden_seed = settings.hidden_seed  # the course config is read once per notebook
        _SESSIONS[path] = sb
    return _SESSIONS[path]


class NotebookFile(pytest.File):
    def collect(self):
        try:
            sb = _launch(Path(self.path))
        except Exception as exc:  # noqa: BLE001 - an unreadable notebook: say so once
            raise pytest.UsageError(f"{self.path}: {exc}") from None
        self.config.add_cleanup(sb.close)
        from .checks import by_exercise  # imports torch while the sandbox boots
        for ex, checks in by_exercise().items():
            for c in checks:
                if c.hidden:
                    _TALLY["hidden"] += c.points
                    continue
                _TALLY["public"] += c.points
                yield CheckItem.from_parent(self, name=f"{ex}::{c.name}", check=c)


class SelfCheckFailure(Exception):
    pass


class CheckItem(pytest.Item):
    def __init__(self, *, check, **kw):
        super().__init__(**kw)
        self.check = check

    def _sandbox(self):
        sb = _SESSIONS[Path(self.path)]
        sb.wait_ready()
        return sb

    def runtest(self):
        from .grade import _run_check

        sb = self._sandbox()
        result = _run_check(sb, self.check, sb.hidden_seed)
        if result.passed:
            _TALLY["passed"] += result.points
            return
        if result.message.startswith("not implemented yet"):
            _TALLY["todo"] += 1
            raise SelfCheckFailure(f"NOT IMPLEMENTED YET: {self.check.exercise} -- {result.message}")
        _TALLY["wrong"] += 1
        raise SelfCheckFailure(f"WRONG: {result.message}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, SelfCheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.check.exercise}: {self.check.what}"


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".ipynb" and ".ipynb_checkpoints" not in file_path.parts:
        return NotebookFile.from_parent(parent, path=file_path)
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _TALLY["public"]:
        return
    tr = terminalreporter
    tr.section("self-check summary")
    tr.write_line(f"public checks: {_TALLY['passed']:g} of {_TALLY['public']:g} points passed"
                  f" ({_TALLY['todo']} not implemented yet, {_TALLY['wrong']} wrong).")
    tr.write_line(f"Hidden checks worth {_TALLY['hidden']:g} more points were NOT run: the grader tests other "
                  "inputs and edge cases, so your grade can be lower than this.")
