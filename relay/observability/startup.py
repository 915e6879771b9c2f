"""The worker's start-up timeline: seconds from the process start to each step, written in
one log line at the first delivery, so that a slow start says where its time went.

    first delivery 1.62s after the process started: imports 0.41, settings 0.45, ...

The process start is the kernel's (`/proc/self/stat`, 10 ms resolution), so the
interpreter's own start and the imports count; elsewhere it is this module's import.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Final

log = logging.getLogger(__name__)

FIRST_DELIVERY: Final = "first 2xx"


def process_started_monotonic() -> float | None:
    """When this process started, on `time.monotonic()`'s clock (Linux), else None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        ticks = int(fields[19])  # starttime: clock ticks after boot (field 22)
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    age_s = since_boot - ticks / os.sysconf("SC_CLK_TCK")
    return time.monotonic() - max(age_s, 0.0)


_IMPORTED_AT: Final = time.monotonic()


class StartupTimeline:
    """Named steps, each recorded once (its first time), in seconds after `started`."""

    def __init__(self, started: float | None = None):
        self.started = started if started is not None else _IMPORTED_AT
        self.steps: dict[str, float] = {}

    @classmethod
    def of_this_process(cls) -> StartupTimeline:
        return cls(process_started_monotonic())

    def mark(self, step: str) -> None:
        if step not in self.steps:
            self.steps[step] = time.monotonic() - self.started
            if step == FIRST_DELIVERY:
                log.info("%s", self.summary())

    def summary(self) -> str:
        parts = ", ".join(f"{step} {at:.2f}" for step, at in self.steps.items())
        first = self.steps.get(FIRST_DELIVERY)
        if first is None:
            return f"start-up after the process started: {parts}"
        return f"first delivery {first:.2f}s after the process started: {parts}"
