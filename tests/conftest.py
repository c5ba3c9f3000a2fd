import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Files whose tests run notebooks in the sandbox, nbgrader, a browser or a whole course: `-m "not slow"`
# leaves them out (the fast subset: references, formats, the lab's answers, packaging; a few minutes).
SLOW_FILES = {
    "test_check_cells.py", "test_class_term.py", "test_course_pipeline.py", "test_device.py",
    "test_execution_model.py", "test_formgrader_browser.py", "test_hostile_corpus.py", "test_lab321_checks.py",
    "test_notebook_teaching.py", "test_real_weights.py", "test_second_lab.py", "test_lab_script.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
