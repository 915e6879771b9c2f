"""Writing benchmark input to Kafka (all at once, or at a rate with known append times) and
reading a topic back (the dead letters)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from relay.kafka import (
    DEFAULT_PARTITIONS,
    ensure_topics,
    make_consumer,
    make_producer,
    partition_for_key,
)
from relay.tools.bench.events import Event

CHUNK: Final = 5_000
TICK_S: Final = 0.02  # a paced feed writes every 20 ms: smooth enough for latency percentiles


async def _send(
    producer: AIOKafkaProducer, topic: str, events: Sequence[Event], timestamp_ms: int | None
) -> list[asyncio.Future[Any]]:
    """One producer batch per partition (by key, as Kafka's default partitioner does)."""
    groups: dict[int, list[Event]] = {}
    for event in events:
        groups.setdefault(partition_for_key(event.key, DEFAULT_PARTITIONS), []).append(event)
    futures: list[asyncio.Future[Any]] = []
    for partition, group in groups.items():
        batch = producer.create_batch()
        for event in group:
            if batch.append(key=event.key, value=event.value, timestamp=timestamp_ms) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=event.key, value=event.value, timestamp=timestamp_ms)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


async def fill(bootstrap: str, topic: str, events: Sequence[Event]) -> None:
    """Writes every event (the topic is created with the relay's partition count)."""
    await ensure_topics(bootstrap, [topic])
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures: list[asyncio.Future[Any]] = []
        for start in range(0, len(events), CHUNK):
            futures += await _send(producer, topic, events[start : start + CHUNK], None)
            if len(futures) > 64:  # bounded: a backlog of a million is still memory
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class PacedFeed:
    """Writes events at `rate_per_s`, remembering each one's append time (epoch ms, the
    record timestamp)."""

    bootstrap: str
    topic: str
    rate_per_s: float
    appended_ms: dict[str, int] = field(default_factory=dict)
    sent: int = 0

    async def run(self, events: Sequence[Event], stop: Callable[[], bool] | None = None) -> None:
        await ensure_topics(self.bootstrap, [self.topic])
        producer = make_producer(self.bootstrap)
        await producer.start()
        try:
            started = time.monotonic()
            futures: list[asyncio.Future[Any]] = []
            while self.sent < len(events) and not (stop and stop()):
                due = min(len(events), int((time.monotonic() - started) * self.rate_per_s) + 1)
                chunk = events[self.sent : due]
                if chunk:
                    now_ms = int(time.time() * 1000)
                    futures += await _send(producer, self.topic, chunk, now_ms)
                    for event in chunk:
                        self.appended_ms[event.identity] = now_ms
                    self.sent = due
                    futures = [f for f in futures if not f.done()]
                await asyncio.sleep(TICK_S)
            await asyncio.gather(*futures)
        finally:
            await producer.stop()


async def read_topic(bootstrap: str, topic: str, timeout_s: float = 60) -> list[ConsumerRecord]:
    """Every record of `topic` now (nothing when it does not exist)."""
    consumer = make_consumer(bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        partitions = await consumer.topics()
        if topic not in partitions:
            return records
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for messages in batch.values():
                records.extend(messages)
            # The embedded broker's ListOffsets can lag: read on until a poll finds nothing.
            positions = [await _position(consumer, tp) for tp in tps]
            if not batch and all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)):
                break
    finally:
        await consumer.stop()
    return records


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return int(await consumer.position(tp))
