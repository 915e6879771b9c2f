"""Writing benchmark input to Kafka (all at once, or at a rate with known append times) and
reading a topic back (the dead letters)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.producer.message_accumulator import BatchBuilder

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


def _batches(
    producer: AIOKafkaProducer, events: Sequence[Event], timestamp_ms: int | None
) -> list[tuple[int, BatchBuilder]]:
    """The events as producer batches, by partition (by key, as Kafka's default partitioner
    does)."""
    groups: dict[int, list[Event]] = {}
    for event in events:
        groups.setdefault(partition_for_key(event.key, DEFAULT_PARTITIONS), []).append(event)
    batches: list[tuple[int, BatchBuilder]] = []
    for partition, group in groups.items():
        batch = producer.create_batch()
        for event in group:
            if batch.append(key=event.key, value=event.value, timestamp=timestamp_ms) is None:
                batches.append((partition, batch))
                batch = producer.create_batch()
                batch.append(key=event.key, value=event.value, timestamp=timestamp_ms)
        batches.append((partition, batch))
    return batches


async def _send(
    producer: AIOKafkaProducer, topic: str, events: Sequence[Event], timestamp_ms: int | None
) -> list[asyncio.Future[Any]]:
    return [
        await producer.send_batch(batch, topic, partition=partition)
        for partition, batch in _batches(producer, events, timestamp_ms)
    ]


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
class Backlog:
    """Events encoded into producer batches ahead of time: writing them is then only the
    sends, so the relay drains a backlog that appears as fast as the broker takes it (as the
    floor's does), not one the bench is still encoding on the same cores."""

    producer: AIOKafkaProducer
    topic: str
    batches: list[tuple[int, BatchBuilder]]

    @classmethod
    async def build(cls, bootstrap: str, topic: str, events: Sequence[Event]) -> Backlog:
        await ensure_topics(bootstrap, [topic])
        producer = make_producer(bootstrap)
        await producer.start()
        batches = _batches(producer, events, None)
        return cls(producer, topic, batches)

    async def write(self) -> None:
        """Sends every batch (partitions interleaved), then closes the producer."""
        try:
            # Round robin over partitions: aiokafka holds a partition's next batch until the
            # last one is drained, and the other partitions need not wait behind it.
            by_partition: dict[int, list[BatchBuilder]] = {}
            for partition, batch in self.batches:
                by_partition.setdefault(partition, []).append(batch)
            futures: list[asyncio.Future[Any]] = []
            queues = list(by_partition.items())
            while queues:
                for partition, queue in queues:
                    futures.append(
                        await self.producer.send_batch(
                            queue.pop(0), self.topic, partition=partition
                        )
                    )
                queues = [(p, q) for p, q in queues if q]
            await asyncio.gather(*futures)
        finally:
            await self.producer.stop()


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
