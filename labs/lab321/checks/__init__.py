"""Lab 3.2.1's checks: its own registry, and one module per exercise (memory, snr, quantizer, weights,
advisor) that declares the exercise and its checks with ``exercise(...)`` and ``@check(...)``."""

from grader.grading.checks import *  # noqa: F401,F403 - Fail, HIDDEN, shown and the comparison helpers
from grader.grading.checks import HIDDEN, Fail, Registry, shown  # noqa: F401

LAB_CHECKS = Registry("lab321")
exercise = LAB_CHECKS.exercise
check = LAB_CHECKS.check

from . import advisor, memory, quantizer, snr, weights  # noqa: E402,F401  (registers the checks)
