"""Student notebooks made safe to show a TA: what is stored in autograded/ and in feedback.

Markdown and raw cells that a student wrote (any cell not identical to one of the
instructor's) are rendered to HTML with the same renderer nbconvert uses and cleaned with
nh3 (Rust's ammonia): no script, no event handler, no ``javascript:`` or other unsafe URL,
no style, no iframe/object/form. Outputs keep only plain text and raster images; attachments
only PNG, JPEG and GIF. The instructor's own cells are kept as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import nh3

SAFE_MIME = {"text/plain", "image/png", "image/jpeg", "image/gif"}
SAFE_ATTACHMENTS = {"image/png", "image/jpeg", "image/gif"}
URL_SCHEMES = {"http", "https", "mailto", "attachment"}
NOTE = "<p><em>(This cell was cleaned for display: it contained HTML that could run code.)</em></p>\n"


def clean_html(html: str) -> str:
    return nh3.clean(html, url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def render_markdown(src: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(src)


def trusted_sources(instructor_notebook: Path) -> set[str]:
    """The text of the instructor's markdown and raw cells: kept verbatim in submissions."""
    try:
        nb = json.loads(Path(instructor_notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    out = set()
    for c in nb.get("cells", []):
        if c.get("cell_type") in ("markdown", "raw"):
            src = c.get("source", "")
            out.add("".join(src) if isinstance(src, list) else str(src))
    return out


def sanitize_notebook(nb, trusted: Iterable[str] = ()) -> int:
    """Clean a notebook (an nbformat NotebookNode or plain dict) in place; return cells changed."""
    trusted = set(trusted)
    changed = 0
    for cell in nb["cells"]:
        kind = cell.get("cell_type")
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if kind in ("markdown", "raw") and src not in trusted:
            html = render_markdown(src) if kind == "markdown" else src
            safe = clean_html(html)
            cell["source"] = safe if kind == "raw" or safe == html else safe + NOTE
            if kind == "raw":
                cell.setdefault("metadata", {}).pop("format", None)
                cell["metadata"].pop("raw_mimetype", None)
            changed += 1
        atts = cell.get("attachments")
        if atts:
            for name in list(atts):
                kept = {m: v for m, v in atts[name].items() if m in SAFE_ATTACHMENTS}
                if kept:
                    atts[name] = kept
                else:
                    del atts[name]
        if kind == "code":
            outs = []
            for out in cell.get("outputs", []):
                t = out.get("output_type")
                if t in ("stream", "error"):
                    outs.append(out)
                elif t in ("execute_result", "display_data"):
                    out["data"] = {m: v for m, v in out.get("data", {}).items() if m in SAFE_MIME}
                    out.get("metadata", {}).clear() if isinstance(out.get("metadata"), dict) else None
                    if out["data"]:
                        outs.append(out)
            cell["outputs"] = outs
    return changed
