import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# `slow`: tests that run notebooks in the sandbox, nbgrader, the doctor's probes, a browser, a whole course
# or a course command in a subprocess (seconds to minutes each). `-m "not slow"` leaves them out: the fast
# subset (360 tests, about a minute on 2 cores) keeps the quick ones: references and formats, the labs'
# answers and Lab 3.2.2's checks run in process, the sandbox worker and its channel's framing, submissions
# as data, the final-score rule, the doctor's diagnosis, deployment manifests, the docs build, packaging.
# Whole files are listed here; a slow test in an otherwise quick file carries `@pytest.mark.slow` itself.
SLOW_FILES = {
    "test_check_cells.py", "test_class_term.py", "test_course_commands.py", "test_course_pipeline.py",
    "test_device.py", "test_execution_model.py", "test_formgrader_browser.py", "test_hidden_messages.py",
    "test_hostile_corpus.py", "test_lab321_checks.py", "test_notebook_teaching.py", "test_real_weights.py",
    "test_second_lab.py", "test_lab_script.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
