"""Read a notebook's code cells without importing anything heavy (no torch, no nbformat)."""

from __future__ import annotations

import json
from pathlib import Path


MAX_NOTEBOOK_BYTES = 32 << 20  # a lab notebook is well under 1 MB; images included, a few MB
MAX_CELL_CHARS = 2_000_000


class NotebookError(Exception):
    """The file is not a readable notebook (the message is one line for the TA)."""


def read_cells(path: Path) -> list[str]:
    """Return the sources of the notebook's code cells, in order; NotebookError if unreadable.

    Whatever the file (size, nesting depth, encoding, nbformat version), nothing but
    NotebookError comes out of here."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_NOTEBOOK_BYTES + 1)
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such file") from None
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read the file ({exc.__class__.__name__})") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path}: the file is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB; clear the outputs "
                            "(Kernel > Restart & Clear Output) and save again")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookError(f"{path}: not a notebook (the file is not UTF-8 text)") from None
    return cells_of_text(text, str(path))


def cells_of_text(text: str, label: str) -> list[str]:
    try:
        return _cells_of_text(text, label)
    except NotebookError:
        raise
    except RecursionError:
        raise NotebookError(f"{label}: not a notebook (its JSON is nested too deeply)") from None
    except Exception as exc:  # noqa: BLE001 - any other oddity: one line, never a traceback
        raise NotebookError(f"{label}: not a readable notebook ({type(exc).__name__})") from None


def _cells_of_text(text: str, label: str) -> list[str]:
    try:
        raw = json.loads(text)
    except ValueError:
        raise NotebookError(f"{label}: not a notebook (the file is not JSON); export it from Jupyter as .ipynb") from None
    if isinstance(raw, dict) and isinstance(raw.get("worksheets"), list):  # nbformat 3
        raw_cells = [c for ws in raw["worksheets"] if isinstance(ws, dict) for c in ws.get("cells") or []]
        key = "input"
    elif isinstance(raw, dict) and isinstance(raw.get("cells"), list):
        raw_cells, key = raw["cells"], "source"
    else:
        raise NotebookError(f"{label}: not a notebook (no list of cells); export it from Jupyter as .ipynb")
    cells = []
    for c in raw_cells:
        if isinstance(c, dict) and c.get("cell_type") == "code":
            src = c.get(key, "")
            src = "".join(map(str, src)) if isinstance(src, list) else str(src)
            if len(src) > MAX_CELL_CHARS:
                raise NotebookError(f"{label}: a code cell has more than {MAX_CELL_CHARS:,} characters")
            cells.append(src)
    return cells
