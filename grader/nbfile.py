"""Read a notebook's code cells without importing anything heavy (no torch, no nbformat)."""

from __future__ import annotations

import json
from pathlib import Path


class NotebookError(Exception):
    """The file is not a readable notebook (the message is one line for the TA)."""


def read_cells(path: Path) -> list[str]:
    """Return the sources of the notebook's code cells, in order; NotebookError if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: cannot read the file ({exc.__class__.__name__})") from None
    return cells_of_text(text, str(path))


def cells_of_text(text: str, label: str) -> list[str]:
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
            cells.append("".join(map(str, src)) if isinstance(src, list) else str(src))
    return cells
