"""A client start cancelled midway (a stop during a ledger rebuild) leaves no connection open:
aiokafka's own start, cancelled while it bootstraps, leaks its bootstrap connection."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from relay.kafka import make_consumer, start_even_if_cancelled

DELAYS_MS = [d / 2 for d in range(100)]  # 0 to 49.5 ms: some cancel hits the bootstrap


async def open_connections_after_cancelled_starts(
    bootstrap: str, start: Callable[[AIOKafkaConsumer], Awaitable[None]]
) -> list[str]:
    """Starts cancelled after 0, 0.5, 1 ... ms, each consumer stopped: the ResourceWarnings."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for delay_ms in DELAYS_MS:
            consumer = make_consumer(bootstrap, group_id=None)
            task = asyncio.ensure_future(start(consumer))
            await asyncio.sleep(delay_ms / 1000)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()
            del consumer, task
        await asyncio.sleep(0)  # closed transports let go of their sockets
        gc.collect()
    return [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]


async def test_a_cancelled_start_is_finished_then_stopped(kafka_bootstrap: str) -> None:
    assert (
        await open_connections_after_cancelled_starts(kafka_bootstrap, start_even_if_cancelled)
        == []
    )


async def test_aiokafka_alone_leaks_it(kafka_bootstrap: str) -> None:
    # What the helper is for; if aiokafka stops leaking, this fails and the helper can go.
    leaked = await open_connections_after_cancelled_starts(kafka_bootstrap, lambda c: c.start())
    assert any("Unclosed AIOKafkaConnection" in w for w in leaked), leaked
