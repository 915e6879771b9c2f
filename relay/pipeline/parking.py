"""Parking: the overflow of held or over-budget accounts waits on `<prefix>.delayed`.

An account whose budget is spent, or whose target X holds, must not hold back the accounts
sharing its partition: its records are parked (written to the delayed topic, acknowledged)
and then finished on the outbound partition, whose committed prefix keeps moving. A parked
record keeps its value (the outbound record, unchanged), key and partition number, with

    relay.park.not_before             epoch seconds before which it must not be sent
    relay.park.count                  how often it has been parked (1, 2, ...)
    relay.origin.topic|partition|offset   the outbound record it came from

The delayed topic has the outbound topic's partition count. The deliver group subscribes to
both with `DELIVER_ASSIGNORS` (the range assignor), which gives partition p of each topic to
the same member, so the owner of an account also owns its parked records.

On the consumer side, `DelayedGate` holds a delayed partition whose head record is not yet
due: it pauses the partition and seeks back to that record (nothing past it is kept in
memory), and resumes it once it is due (quixstreams' `SinkBackpressureError` shape):

    for tp, records in batch.items():
        if tp.topic == settings.delayed_topic:
            records = gate.admit_batch(tp, records)   # the due prefix
        ...
    gate.release_due()                                # after every poll

Records behind a held head wait with it (one partition is one queue); a record without a
readable `relay.park.not_before` is due at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from relay.config import Settings
from relay.kafka import BatchProducer, Header, OutRecord, ensure_topic_like
from relay.lifecycle import Lifecycle
from relay.observability.metrics import Metrics
from relay.pipeline.dlq import Origin

NOT_BEFORE_HEADER: Final = "relay.park.not_before"
COUNT_HEADER: Final = "relay.park.count"
ORIGIN_TOPIC: Final = "relay.origin.topic"
ORIGIN_PARTITION: Final = "relay.origin.partition"
ORIGIN_OFFSET: Final = "relay.origin.offset"
# Partition p of the outbound and the delayed topic go to the same member of the group.
DELIVER_ASSIGNORS: Final[tuple[Any, ...]] = (RangePartitionAssignor,)


def _headers(record: ConsumerRecord) -> dict[str, bytes]:
    return {name: raw for name, raw in record.headers or ()}


def _int(raw: bytes | None) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(raw)  # type: ignore[arg-type]
    return None


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """A record to park: partition and key as on the outbound topic, value unchanged."""

    partition: int
    key: bytes | None
    value: bytes
    origin: Origin
    times_parked: int = 0  # before this park

    @classmethod
    def of(cls, record: ConsumerRecord) -> ParkedRecord:
        """An outbound record, or a delayed one parked again (its origin and count kept)."""
        return cls(
            record.partition, record.key, record.value or b"", origin_of(record), park_count(record)
        )


def origin_of(record: ConsumerRecord) -> Origin:
    """The outbound record a record came from: its origin headers, else itself."""
    headers = _headers(record)
    partition, offset = _int(headers.get(ORIGIN_PARTITION)), _int(headers.get(ORIGIN_OFFSET))
    topic = headers.get(ORIGIN_TOPIC)
    if topic is None or partition is None or offset is None:
        return Origin(record.topic, record.partition, record.offset)
    return Origin(topic.decode(errors="replace"), partition, offset)


def park_count(record: ConsumerRecord) -> int:
    """How often a record has been parked (0 for an outbound record)."""
    return _int(_headers(record).get(COUNT_HEADER)) or 0


def not_before(record: ConsumerRecord) -> float | None:
    raw = _headers(record).get(NOT_BEFORE_HEADER)
    with contextlib.suppress(TypeError, ValueError):
        return float(raw)  # type: ignore[arg-type]
    return None


def seconds_until_due(record: ConsumerRecord, now_epoch_s: float) -> float | None:
    """How long a delayed record must still wait; None when it is due."""
    due = not_before(record)
    if due is None or due <= now_epoch_s:
        return None
    return due - now_epoch_s


class Parking(Lifecycle):
    """Writes parked records to the delayed topic; tells when a delayed record is due.

    Closing has nothing to wait for: `park` returns only once the broker acknowledged."""

    what = "parking"

    def __init__(
        self,
        settings: Settings,
        producer: BatchProducer,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.topic = settings.delayed_topic
        self._producer = producer
        self._metrics = metrics
        self._clock = clock  # epoch seconds, like the not_before header
        self._partitions = 0

    async def _open(self) -> None:
        self._partitions = await ensure_topic_like(
            self.settings, self.topic, self.settings.outbound_topic
        )

    async def park(self, items: Sequence[ParkedRecord], not_before_epoch_s: float) -> None:
        """Write the records to the delayed topic, due at `not_before_epoch_s`; returns once
        the broker acknowledged them (then their outbound offsets may finish)."""
        self._require_open()
        for item in items:
            if not 0 <= item.partition < self._partitions:
                raise ValueError(f"partition {item.partition} is not one of {self.topic}'s")
        due = f"{not_before_epoch_s:.3f}".encode()
        await self._producer.send_and_wait(
            OutRecord(
                self.topic,
                item.value,
                key=item.key,
                headers=_park_headers(item, due),
                partition=item.partition,
            )
            for item in items
        )
        self._metrics.parked.inc(len(items))

    def hold_until(self, record: ConsumerRecord) -> float | None:
        """Seconds this delayed record must still wait before it may enter its lane; None
        when it is due."""
        return seconds_until_due(record, self._clock())


def _park_headers(item: ParkedRecord, due: bytes) -> list[Header]:
    return [
        (NOT_BEFORE_HEADER, due),
        (COUNT_HEADER, str(item.times_parked + 1).encode()),
        (ORIGIN_TOPIC, item.origin.topic.encode()),
        (ORIGIN_PARTITION, str(item.origin.partition).encode()),
        (ORIGIN_OFFSET, str(item.origin.offset).encode()),
    ]


class DelayedGate:
    """Keeps a delayed partition paused, positioned at its not-yet-due head, until it is due."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self._consumer = consumer
        self._metrics = metrics
        self._clock = clock
        self._due: dict[TopicPartition, float] = {}  # held partition -> epoch s it is due

    @property
    def held(self) -> frozenset[TopicPartition]:
        """Partitions the gate keeps paused (a global resume must leave them paused)."""
        return frozenset(self._due)

    def admit_batch(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord]
    ) -> Sequence[ConsumerRecord]:
        """The due prefix of a fetched batch of `tp`; at the first record not yet due the
        partition is held there (and the rest of the batch is fetched again later)."""
        now = self._clock()
        for index, record in enumerate(records):
            wait = seconds_until_due(record, now)
            if wait is not None:
                self.hold(tp, record.offset, now + wait)
                return records[:index]
        return records

    def hold(self, tp: TopicPartition, offset: int, due_epoch_s: float) -> None:
        """Pause `tp` and rewind it to `offset` until `due_epoch_s`."""
        self._consumer.pause(tp)
        self._consumer.seek(tp, offset)
        self._due[tp] = due_epoch_s
        self._metrics.delayed_held.set(len(self._due))

    def release_due(self) -> list[TopicPartition]:
        """Resume the held partitions that are due; returns them."""
        now = self._clock()
        due = [tp for tp, at in self._due.items() if at <= now]
        if due:
            for tp in due:
                del self._due[tp]
            assigned = self._consumer.assignment()
            self._consumer.resume(*(tp for tp in due if tp in assigned))
            self._metrics.delayed_held.set(len(self._due))
        return due

    def next_due_in(self) -> float | None:
        """Seconds until the first held partition is due; None when none is held."""
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - self._clock())

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop the holds of revoked partitions (a new assignment starts unpaused)."""
        for tp in partitions:
            self._due.pop(tp, None)
        self._metrics.delayed_held.set(len(self._due))
