"""Progress display for long commands: a live line on a terminal, a periodic line otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Reports ``done`` out of ``total`` (when known) with a rate, at most every ``interval`` s.

    On a terminal the line redraws in place every 0.2 s; in a log (not a terminal) a full line
    is written every ``log_interval`` s so that long runs still show they are alive.
    """

    def __init__(
        self,
        label: str,
        total: float | None = None,
        unit: str = "",
        stream: TextIO | None = None,
        log_interval: float = 5.0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = 0.2 if self.tty else log_interval
        self.started = time.monotonic()
        self._last = self.started
        self._shown = False

    def update(self, done: float, detail: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        share = f" {100 * done / self.total:5.1f}%" if self.total else ""
        text = f"{self.label}:{share} {detail} ({elapsed:.1f} s)"
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = True

    def close(self, detail: str = "") -> None:
        if self._shown or detail:
            self.update(self.total or 0, detail, force=True)
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
