"""Self-check: ``pytest assignments/`` runs the public checks on your notebook(s).

Each public check is one test. Your notebook runs once, in the same sandbox the grader
uses; hidden checks are NOT run, so passing here is not full marks.

The self-check is the pytest plugin ``grader.course.selfcheck``, which installing the course package
registers (``pytest lab321.ipynb`` works anywhere then). This file only stands in for it when
the plugin is not loaded (e.g. PYTEST_DISABLE_PLUGIN_AUTOLOAD=1), so notebooks are collected once.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.course import selfcheck  # noqa: E402


def _plugin_loaded(config) -> bool:
    return config.pluginmanager.is_registered(selfcheck)


def pytest_collect_file(parent, file_path):
    if _plugin_loaded(parent.config):
        return None
    return selfcheck.pytest_collect_file(parent, file_path)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _plugin_loaded(config):
        selfcheck.pytest_terminal_summary(terminalreporter, exitstatus, config)
