"""The event loop a process runs on: uvloop's where it can be imported (less CPU per event,
bench/profile.md), else asyncio's own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str = "uvloop") -> LoopFactory | None:
    """The factory of `choice`'s loop; None is asyncio's default loop (chosen, or uvloop
    not installed: Windows, a platform without its wheel)."""
    if choice != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        log.info("uvloop cannot be imported: running on asyncio's own event loop")
        return None
    return uvloop.new_event_loop
