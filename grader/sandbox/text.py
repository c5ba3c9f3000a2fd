"""Student-derived text made safe to show on a terminal or in a report."""

from __future__ import annotations

import re

# ANSI/VT escape sequences (CSI, OSC, and two-character escapes), then any other control
# character but newline and tab, and the Unicode bidi overrides that reorder what is shown.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b-\u200f\u061c"
                       r"\u2028\u2029\u2060-\u2064\ufeff\U000e0000-\U000e007f]")


def clean(text: str) -> str:
    """Drop escape sequences and control characters (newlines and tabs stay)."""
    if not isinstance(text, str):
        text = str(text)
    return _CONTROLS.sub("", _ESCAPES.sub("", text))
