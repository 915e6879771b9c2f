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

    async def wait(self) -> None:
        """Return once set (at once if it is); one task waits at a time."""
        if self._set:
            return
        if self._waiter is not None:
            raise RuntimeError("a Wakeup has one waiter at a time")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None
