"""The lanes' wake-up call behaves as `asyncio.Event` does for its one waiter."""

from __future__ import annotations

import asyncio

import pytest

from relay.pipeline.wakeup import Wakeup

DEADLINE_S = 10.0  # generous: only a missing wake-up would take this long


async def test_a_set_wakeup_returns_at_once() -> None:
    wakeup = Wakeup()
    wakeup.set()
    assert wakeup.is_set()
    await asyncio.wait_for(wakeup.wait(), DEADLINE_S)


async def test_a_waiter_returns_when_set_and_not_before() -> None:
    wakeup = Wakeup()
    waiter = asyncio.create_task(wakeup.wait())
    for _ in range(5):  # the waiter runs up to its await and stays there
        await asyncio.sleep(0)
    assert not waiter.done()
    wakeup.set()
    await asyncio.wait_for(waiter, DEADLINE_S)
    assert wakeup.is_set()


async def test_clear_makes_the_next_wait_wait() -> None:
    wakeup = Wakeup()
    wakeup.set()
    wakeup.clear()
    assert not wakeup.is_set()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await wakeup.wait()


async def test_a_timed_out_wait_leaves_it_usable() -> None:
    """The lane loop waits with a timeout: the next wait must still be woken."""
    wakeup = Wakeup()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await wakeup.wait()
    waiter = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    wakeup.set()
    await asyncio.wait_for(waiter, DEADLINE_S)


async def test_set_twice_and_set_after_a_cancel_are_harmless() -> None:
    wakeup = Wakeup()
    waiter = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    wakeup.set()
    wakeup.set()
    await asyncio.wait_for(wakeup.wait(), DEADLINE_S)


async def test_one_waiter_at_a_time() -> None:
    wakeup = Wakeup()
    first = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await wakeup.wait()
    wakeup.set()
    await asyncio.wait_for(first, DEADLINE_S)
