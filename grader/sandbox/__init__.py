"""The sandbox: runs a notebook's cells in an isolated process tree and calls its functions.

``client`` is the grader's side (zygote, keeper, notebook process, framing with deadlines);
``worker_src`` is the worker's source, run with ``python -I`` and never imported by the grader.
The sandbox imports nothing of grading, the course tools or any lab (docs/architecture.md).
"""

from .client import (  # noqa: F401 - the sandbox's public names
    LEVELS, MASKS, MAX_FRAME, MAX_RESULT, WORKER_IMPORTS, BudgetExceeded, CellResult, EnvironmentFault, Limits,
    NotebookRun, Sandbox, StudentError, _keep_paths, _mask_paths, best_level, decode, encode_arg, zygote,
)

__all__ = ["LEVELS", "MASKS", "MAX_FRAME", "MAX_RESULT", "WORKER_IMPORTS", "BudgetExceeded", "CellResult",
           "EnvironmentFault", "Limits", "NotebookRun", "Sandbox", "StudentError", "best_level", "decode",
           "encode_arg", "zygote"]
