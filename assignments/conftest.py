"""Self-check: ``pytest assignments/`` runs the public checks on your notebook(s).

Each public check becomes one test. Your notebook runs once, in the same sandbox the
grader uses; hidden checks are NOT run, so passing here is not full marks.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader import selfcheck  # noqa: E402

pytest_collect_file = selfcheck.pytest_collect_file
pytest_terminal_summary = selfcheck.pytest_terminal_summary
