"""The sandbox: runs a notebook's cells in an isolated process tree and calls its functions.

``client`` is the grader's side (zygote, keeper, notebook process, framing with deadlines);
``worker/`` is the worker, a package of one module per mechanism run as a file
(``python -I grader/sandbox/worker/main.py``); the grader imports only its ``codec`` (framing and
plain data) and ``spec`` (the spawn spec), so both sides share one definition of each.
The sandbox imports nothing of grading, the course tools or any lab (docs/architecture.md).
"""

from .client import (  # noqa: F401 - the sandbox's public names
    LEVELS, MASKS, MAX_FRAME, MAX_RESULT, WORKER_IMPORTS, BudgetExceeded, CellResult, EnvironmentFault, Limits,
    NotebookRun, Sandbox, StudentError, _keep_paths, _mask_paths, best_level, decode, encode_arg, zygote,
)

__all__ = ["LEVELS", "MASKS", "MAX_FRAME", "MAX_RESULT", "WORKER_IMPORTS", "BudgetExceeded", "CellResult",
           "EnvironmentFault", "Limits", "NotebookRun", "Sandbox", "StudentError", "best_level", "decode",
           "encode_arg", "zygote"]
