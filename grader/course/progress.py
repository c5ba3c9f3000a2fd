"""Progress of a class being graded: a carriage-return bar on a terminal, plain lines in a log.

    lab-grader: 12/60 graded, 0.9 notebooks/s, ETA 53 s, 3 below full marks, 1 no gradable notebook
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Optional, TextIO

from ..sandbox.text import clean

log = logging.getLogger("lab_grader")


class Progress:
    """Thread-safe counter of graded notebooks; prints on every step (bar) or every ``every`` steps (log)."""

    def __init__(self, total: int, *, stream: Optional[TextIO] = None, tty: Optional[bool] = None,
                 label: str = "graded", every: int = 0):
        self.total = total
        self.done = 0
        self.below_full = 0
        self.unreadable = 0
        self.errors = 0
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        # a log gets about 20 lines a class (and the last); a terminal every step
        self.every = every or max(1, total // 20)
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.lines: list[str] = []

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = (self.done - self.unreadable) / elapsed  # notebooks actually graded (a missing one costs nothing)
        left = self.total - self.done
        eta = f"ETA {left / rate:.0f} s" if rate > 0 and left > 0 else ("done" if left <= 0 else "ETA ?")
        parts = [f"{self.done}/{self.total} {self.label}", f"{rate:.2f} notebooks/s", eta,
                 f"{self.below_full} below full marks"]
        if self.unreadable:
            parts.append(f"{self.unreadable} no gradable notebook")
        if self.errors:
            parts.append(f"{self.errors} failed to grade")
        return ", ".join(parts)

    def step(self, *, full: Optional[bool] = None, unreadable: bool = False, error: bool = False,
             who: str = "") -> None:
        with self.lock:
            self.done += 1
            self.below_full += full is False
            self.unreadable += unreadable
            self.errors += error
            text = self.line()
            self.lines.append(text)
            if self.tty:
                bar_w = 24
                filled = int(bar_w * self.done / max(self.total, 1))
                tail = f"  {clean(who)[:30]}" if who else ""
                self.stream.write(f"\r[{'#' * filled}{'.' * (bar_w - filled)}] {text}{tail}\x1b[K")
                if self.done >= self.total:
                    self.stream.write("\n")
                self.stream.flush()
            elif self.done % self.every == 0 or self.done >= self.total:
                self.stream.write(f"lab-grader: progress: {text}\n")
                self.stream.flush()
                log.info("progress: %s", text)

    def message(self, text: str) -> None:
        """A line of its own (the bar is redrawn by the next step)."""
        with self.lock:
            if self.tty:
                self.stream.write("\r\x1b[K")
            self.stream.write(f"lab-grader: {clean(text)}\n")
            self.stream.flush()
