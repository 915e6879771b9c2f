"""Progress lines for long commands: one live line on a terminal, whole lines otherwise.

Written with `\\r` into a file or a pipe, progress becomes one run-on line; so when the
stream is not a terminal every update is a line of its own, at most one per `every_s`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

EVERY_S: Final = 2.0


class ProgressLine:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self.clock = clock
        self._last = float("-inf")
        self._open = False  # a live line without its newline yet

    def show(self, text: str) -> None:
        """Update the line (on a terminal) or print it (elsewhere, rate-limited)."""
        now = self.clock()
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._open = True
        elif now - self._last >= self.every_s:
            self.stream.write(text + "\n")
            self._last = now
        self.stream.flush()

    def done(self, text: str | None = None) -> None:
        """The last state, always printed, ending the line."""
        if text is not None:
            if self.tty:
                self.stream.write("\r" + text + "\x1b[K\n")
            else:
                self.stream.write(text + "\n")
        elif self._open:
            self.stream.write("\n")
        self._open = False
        self.stream.flush()
