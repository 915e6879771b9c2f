"""How busy the event loop is, and the linger that follows from it.

A web batch waits `RELAY_LINGER_S` to fill. With thousands of accounts each lane gets an
event now and then, so a fixed linger sends one- or two-event requests, and each request
costs far more CPU than an event (signing, HTTP, the answer): the loop saturates at a few
hundred requests a second and delivery crawls. The loop's lag (how late a timer fires) says
when that happens; while it is late, batches wait longer (up to `BUSY_LINGER_MAX_S`), so
that the same CPU carries many more events per request. An idle loop keeps the set linger.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

SAMPLE_S: Final = 0.1
SMOOTHING: Final = 0.2  # weight of the newest sample in the moving average
LAG_IGNORED_S: Final = 0.02  # a loop this late is not busy (GC, a burst of answers)
LINGER_PER_LAG: Final = 20.0  # seconds of extra linger per second of lag
BUSY_LINGER_MAX_S: Final = 5.0


class LoopLag:
    """A moving average of how late a timer of the running loop fires."""

    def __init__(self) -> None:
        self.lag_s = 0.0

    def observe(self, lag_s: float) -> None:
        self.lag_s += SMOOTHING * (max(lag_s, 0.0) - self.lag_s)

    def linger_s(self, configured_s: float) -> float:
        """The linger for batches now: the configured one, longer while the loop is late."""
        if self.lag_s <= LAG_IGNORED_S:
            return configured_s
        busy = min(BUSY_LINGER_MAX_S, LINGER_PER_LAG * self.lag_s)
        return max(configured_s, busy)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(SAMPLE_S)
            self.observe(time.monotonic() - started - SAMPLE_S)
