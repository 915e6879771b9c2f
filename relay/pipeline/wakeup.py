"""A lane's wake-up call: `asyncio.Event` for one waiter, at a tenth of its memory.

Every lane has one, and thousands of lanes wait at once. An `asyncio.Event` costs about
1.1 KB (its instance dict and a deque of waiters, allocated even while nobody waits); this
holds a flag and, only while its one task waits, a future.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    """`set`, `clear`, `is_set` and `wait` as `asyncio.Event` has them, for one waiter."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Return once set (at once if it is), or after `timeout_s`: whether it is set. One
        task waits at a time. A timer of its own, not `asyncio.timeout`: no context object
        per wait."""
        if self._set:
            return True
        if self._waiter is not None:
            raise RuntimeError("a Wakeup has one waiter at a time")
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout_s is None else loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._set


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
