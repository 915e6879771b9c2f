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


async def test_a_wait_with_a_timeout_ends_unset_and_a_set_one_says_so() -> None:
    """The lane loop's wait: its own timer ends it (False), a `set` ends it first (True)."""
    wakeup = Wakeup()
    assert await asyncio.wait_for(wakeup.wait(0.01), DEADLINE_S) is False
    waiter = asyncio.create_task(wakeup.wait(DEADLINE_S * 10))
    await asyncio.sleep(0)
    wakeup.set()
    assert await asyncio.wait_for(waiter, DEADLINE_S) is True


async def test_a_woken_wait_leaves_no_timer_behind() -> None:
    """Thousands of lanes wait with timeouts: a wait that ended must not keep its timer."""
    loop = asyncio.get_running_loop()
    wakeup = Wakeup()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    waiter = asyncio.create_task(wakeup.wait(3600.0))
    await asyncio.sleep(0)
    wakeup.set()
    await asyncio.wait_for(waiter, DEADLINE_S)
    cancelled = [h for h in loop._scheduled if h.cancelled()]  # type: ignore[attr-defined]
    assert len(loop._scheduled) - len(cancelled) == before  # type: ignore[attr-defined]


async def test_a_cancelled_timed_wait_leaves_it_usable() -> None:
    wakeup = Wakeup()
    waiter = asyncio.create_task(wakeup.wait(3600.0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.wait_for(wakeup.wait(0.01), DEADLINE_S) is False
