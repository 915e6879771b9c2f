"""A request the broker drops (never answers) costs its connection, not the records behind
it: the producer renews the connection and sends the batch again, long before the batch's
own timeout (which holds records through a broker outage) is over."""

from __future__ import annotations

import asyncio

from relay.kafka import BatchProducer, OutRecord, ensure_topics, start_producer
from tests.kafka_helpers import read_all
from tests.kafka_proxy import PRODUCE, broker_behind_proxy

WORKER_REQUEST_TIMEOUT_MS = 130_000  # what a worker gives a batch (RELAY_BROKER_LOST_EXIT_S + 10)


async def test_a_dropped_produce_request_is_sent_again_on_a_new_connection() -> None:
    async with broker_behind_proxy() as proxy:
        await ensure_topics(proxy.bootstrap, ["dropped"], partitions=1)
        producer = await start_producer(
            proxy.bootstrap, "false", request_timeout_ms=WORKER_REQUEST_TIMEOUT_MS
        )
        try:
            batches = BatchProducer(producer)
            await batches.send_and_wait([OutRecord("dropped", b"first", key=b"k")])
            proxy.swallow(PRODUCE)
            # Well inside the batch's own timeout: only a renewed connection gets it there.
            await asyncio.wait_for(
                batches.send_and_wait([OutRecord("dropped", b"second", key=b"k")]), 60
            )
        finally:
            await producer.stop()
        assert proxy.swallowed == {PRODUCE: 1}
        records = await read_all(proxy.bootstrap, "dropped", 2)
        assert [r.value for r in records] == [b"first", b"second"]
