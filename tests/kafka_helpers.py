"""Reading topics and committed offsets in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_producer
from relay.pipeline import outbound


async def produce_values(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await ensure_topics(bootstrap, [topic])
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await BatchProducer(producer).send_and_wait(OutRecord(topic, v) for v in values)
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout_s: float = 20,
    count: Callable[[ConsumerRecord], int] = lambda record: 1,
) -> list[ConsumerRecord]:
    """Every record of `topic`, waiting until at least `expected` arrived (as `count`s them)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    arrived = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
                arrived += sum(count(m) for m in messages)
            if arrived >= expected and not batch:
                break
    finally:
        await consumer.stop()
    return records


async def committed_and_end(
    bootstrap: str, group: str, topic: str
) -> dict[int, tuple[int | None, int]]:
    """{partition: (committed offset of `group`, offset after the partition's last record)}.

    The end comes from reading the records: the embedded broker's ListOffsets can lag.
    """
    ends: dict[int, int] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    for record in await read_all(bootstrap, topic, 0, timeout_s=5):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return {p: (committed[p], ends.get(p, 0)) for p in committed}


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_for_async(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)


async def produce_records(bootstrap: str, records: list[OutRecord]) -> None:
    await ensure_topics(bootstrap, {r.topic for r in records})
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await BatchProducer(producer).send_and_wait(records)
    finally:
        await producer.stop()


async def read_outbound(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 20
) -> tuple[list[ConsumerRecord], list[outbound.Routed]]:
    """The records of an outbound topic and the events they carry (a bundle's, one by one),
    waiting until at least `expected` events arrived."""
    records = await read_all(
        bootstrap, topic, expected, timeout_s, lambda r: len(outbound.decode_all(r.value))
    )
    return records, [event for r in records for event in outbound.decode_all(r.value)]


async def uncommitted_events(bootstrap: str, group: str, topic: str) -> int:
    """The events of an outbound topic at or past `group`'s committed offsets."""
    committed = {
        p: c or 0 for p, (c, _) in (await committed_and_end(bootstrap, group, topic)).items()
    }
    records = await read_all(bootstrap, topic, 0, timeout_s=5)
    return sum(
        len(outbound.decode_all(r.value))
        for r in records
        if r.offset >= committed.get(r.partition, 0)
    )
