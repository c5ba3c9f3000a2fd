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

import re

SAFE_MIME = {"text/plain", "image/png", "image/jpeg", "image/gif"}
SAFE_ATTACHMENTS = {"image/png", "image/jpeg", "image/gif"}
URL_SCHEMES = {"http", "https", "mailto", "data"}
SAFE_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*\Z")
NOTE = "<p><em>(This cell was cleaned for display: it contained HTML that could run code.)</em></p>\n"


def _attribute_filter(tag: str, attr: str, value: str):
    """data: URLs only as raster images in <img>; everything else as nh3 decides."""
    if value.strip().lower().startswith("data:"):
        return value if tag == "img" and attr == "src" and SAFE_DATA_IMAGE.match(value.strip()) else None
    return value


def clean_html(html: str) -> str:
    return nh3.clean(html, url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow",
                     attribute_filter=_attribute_filter)


def render_markdown(src: str, attachments: dict | None = None) -> str:
    """Markdown to HTML as nbconvert renders it; safe attachments are embedded as data: images,
    a missing or unsafe one becomes a broken image instead of an error."""
    from nbconvert.filters.markdown_mistune import InvalidNotebook, IPythonRenderer, MarkdownWithMath

    try:
        renderer = IPythonRenderer(escape=False, embed_images=False, attachments=attachments or {})
        return MarkdownWithMath(renderer=renderer).render(src)
    except InvalidNotebook:
        renderer = IPythonRenderer(escape=False, embed_images=False, attachments={})
        return MarkdownWithMath(renderer=renderer).render(src.replace("attachment:", "missing-attachment:"))


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
        atts = cell.get("attachments") or {}
        safe_atts = {}
        for name, bundle in atts.items():
            kept = {m: v for m, v in bundle.items() if m in SAFE_ATTACHMENTS} if isinstance(bundle, dict) else {}
            if kept:
                safe_atts[name] = kept
        if kind in ("markdown", "raw") and src not in trusted:
            shown = src
            for name in set(atts) - set(safe_atts):
                shown = shown.replace(f"attachment:{name}", f"removed-attachment:{name}")
            html = render_markdown(shown, safe_atts) if kind == "markdown" else src
            safe = clean_html(html)
            cell["source"] = safe if kind == "raw" or safe == html else safe + NOTE
            cell.pop("attachments", None)  # embedded above, as data: images
            if kind == "raw":
                cell.setdefault("metadata", {}).pop("format", None)
                cell["metadata"].pop("raw_mimetype", None)
            changed += 1
        elif atts:
            cell["attachments"] = safe_atts
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
