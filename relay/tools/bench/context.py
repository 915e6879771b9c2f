"""What every scenario carries: its name, size, deadline, progress lines and settings."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from relay import hotpath
from relay.errors import RelayError

# The budget is the one setting the benchmarks change by default: they measure the relay,
# not X's limit (the budget scenario sets its own).
BENCH_ACCOUNT_LIMIT: Final = 10**12
BENCH_TOKEN_LIMIT: Final = 10**9
POLL_S: Final = 0.1
STALL_S: Final = 60.0


class BenchTimeout(RelayError):
    """A scenario ran out of its time budget, or what it waits for stopped moving."""


class StallGuard:
    """Raises BenchTimeout when a watched count has not changed for `stall_s` seconds: a
    relay that is alive but no longer delivers fails the wait early, with a reason."""

    def __init__(self, what: str, stall_s: float = STALL_S):
        self.what, self.stall_s = what, stall_s
        self._last: int | None = None
        self._since = time.monotonic()

    def seen(self, count: int) -> None:
        if count != self._last:
            self._last, self._since = count, time.monotonic()
        elif time.monotonic() - self._since > self.stall_s:
            raise BenchTimeout(f"{self.what}: no progress for {self.stall_s:.0f}s at {count:,}")


@dataclass
class Run:
    """One scenario run. `relay_env` holds the settings every `relay run` gets beyond the
    wiring (bootstrap, base URL, topics); `--set NAME=VALUE` adds to it."""

    scenario: str
    command: str
    quick: bool
    timeout_s: float
    work_dir: Path
    relay_env: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    keep_logs: bool = False  # a part failed: keep the processes' logs for a look

    @property
    def deadline(self) -> float:
        return self.started + self.timeout_s

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {self.scenario} {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def check(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise BenchTimeout(f"{self.scenario}: out of time ({self.timeout_s:.0f}s) {what}")

    async def wait_for(
        self,
        condition: Callable[[], Awaitable[bool]],
        what: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = POLL_S,
        alive: Callable[[], None] | None = None,
    ) -> None:
        """Polls `condition` until true; BenchTimeout at the deadline (the scenario's or
        `timeout_s`). `alive` raises when a process the wait depends on has died."""
        limit = min(self.deadline, time.monotonic() + (timeout_s or self.timeout_s))
        while not await condition():
            if alive is not None:
                alive()
            if time.monotonic() > limit:
                raise BenchTimeout(f"{self.scenario}: timed out waiting for {what}")
            await asyncio.sleep(poll_s)

    def settings_note(self, extra: Mapping[str, str] | None = None) -> str:
        """The non-default settings the relay ran with, as the results print them."""
        values = {**self.relay_env, **(extra or {})}
        compiled = hotpath.runs_compiled(values)
        build = "; hot path compiled" if compiled else "; hot path from its Python sources"
        if not values:
            return "default settings" + build
        shown = (f"{k}={'(set)' if is_secret_name(k) else v}" for k, v in values.items())
        return "default settings except " + ", ".join(shown) + build


def is_secret_name(name: str) -> bool:
    """Settings whose values are never printed (the bench's own HMAC key included)."""
    return any(word in name for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))
