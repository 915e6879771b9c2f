"""Parking on the real broker: park and read back, the delayed gate, the group's assignor."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from relay.config import Settings
from relay.errors import ClosedError
from relay.kafka import BatchProducer, ensure_topics
from relay.observability.metrics import Metrics
from relay.pipeline.dlq import Origin
from relay.pipeline.parking import (
    COUNT_HEADER,
    DELIVER_ASSIGNORS,
    NOT_BEFORE_HEADER,
    DelayedGate,
    ParkedRecord,
    Parking,
    origin_of,
    seconds_until_due,
)
from tests.broker_fixtures import PARTITIONS, FakeClock, outbound_settings
from tests.kafka_helpers import read_all


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return await outbound_settings(kafka_bootstrap, topic_prefix)


def parked(partition: int, n: int) -> ParkedRecord:
    value = b"R2 web acct%d px1 %032x\n{}" % (n, n)
    return ParkedRecord(partition, b"acct%d" % n, value, Origin("t.outbound", partition, n))


async def test_parked_records_keep_value_key_partition_and_origin(
    settings: Settings, producer: BatchProducer
) -> None:
    metrics = Metrics()
    async with Parking(settings, producer, metrics) as parking:
        items = [parked(0, 1), parked(2, 2), parked(2, 3)]
        await parking.park(items, 1_900_000_000.5)
        records = await read_all(settings.kafka_bootstrap, settings.delayed_topic, 3)
        assert metrics.total("relay_events_parked") == 3
        by_key = {r.key: r for r in records}
        for item in items:
            record = by_key[item.key]
            headers = dict(record.headers)
            assert (record.partition, record.value) == (item.partition, item.value)
            assert headers[NOT_BEFORE_HEADER] == b"1900000000.500"
            assert headers[COUNT_HEADER] == b"1"
            assert origin_of(record) == item.origin

        # Parked again: the count goes up, the origin stays the outbound record.
        again = ParkedRecord.of(by_key[b"acct1"])
        assert (again.times_parked, again.origin) == (1, items[0].origin)
        await parking.park([again], 1_900_000_100.0)
        records = await read_all(settings.kafka_bootstrap, settings.delayed_topic, 4)
        second = max((r for r in records if r.key == b"acct1"), key=lambda r: r.offset)
        assert dict(second.headers)[COUNT_HEADER] == b"2"
        assert origin_of(second) == items[0].origin
        assert second.value == items[0].value

        with pytest.raises(ValueError):
            await parking.park([parked(PARTITIONS, 9)], 0)
    with pytest.raises(ClosedError):
        await parking.park([parked(0, 1)], 0)


async def test_hold_until_counts_down_on_the_injected_clock(
    settings: Settings, producer: BatchProducer
) -> None:
    clock = FakeClock(1_900_000_000.0)
    async with Parking(settings, producer, Metrics(), clock=clock) as parking:
        await parking.park([parked(1, 1)], clock.now + 30)
        (record,) = await read_all(settings.kafka_bootstrap, settings.delayed_topic, 1)
        assert parking.hold_until(record) == pytest.approx(30)
        clock.now += 29.5
        assert parking.hold_until(record) == pytest.approx(0.5)
        clock.now += 0.5
        assert parking.hold_until(record) is None


async def test_the_gate_holds_a_head_not_yet_due_without_reading_past_it(
    settings: Settings, producer: BatchProducer
) -> None:
    clock = FakeClock(time.time())
    metrics = Metrics()
    async with Parking(settings, producer, metrics, clock=clock) as parking:
        await parking.park([parked(0, 1)], clock.now + 60)  # the head of partition 0: waits
        await parking.park([parked(0, 2), parked(1, 3)], clock.now - 1)  # due, behind it / apart
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            tp0, tp1 = (TopicPartition(settings.delayed_topic, p) for p in (0, 1))
            consumer.assign([tp0, tp1])
            gate = DelayedGate(consumer, metrics, clock=clock)
            fetched: dict[int, list[int]] = {0: [], 1: []}
            admitted: list[bytes | None] = []

            async def poll() -> None:
                batch = await consumer.getmany(timeout_ms=100)
                for tp, records in batch.items():
                    fetched[tp.partition] += [r.offset for r in records]
                    admitted.extend(r.key for r in gate.admit_batch(tp, records))
                gate.release_due()

            async def poll_until(keys: list[bytes], held: bool = False) -> None:
                deadline = time.monotonic() + 20
                while not all(k in admitted for k in keys) or (held and tp0 not in gate.held):
                    assert time.monotonic() < deadline, f"never admitted {keys}: {admitted}"
                    await poll()

            await poll_until([b"acct3"], held=True)
            assert admitted == [b"acct3"]
            assert tp0 in consumer.paused()
            assert await consumer.position(tp0) == 0  # rewound to the head
            assert gate.next_due_in() == pytest.approx(60, abs=0.01)
            assert metrics.registry.get_sample_value("relay_delayed_partitions_held") == 1

            # Fetching goes on for the other partition while partition 0 gives nothing.
            fetched[0].clear()
            await parking.park([parked(1, 4)], clock.now - 1)
            await poll_until([b"acct4"])
            assert fetched[0] == []
            assert admitted == [b"acct3", b"acct4"]

            clock.now += 61  # past the due time (the header keeps milliseconds)
            await poll_until([b"acct1", b"acct2"])
            assert admitted == [b"acct3", b"acct4", b"acct1", b"acct2"]
            assert not gate.held and tp0 not in consumer.paused()
        finally:
            await consumer.stop()


@pytest.mark.parametrize(
    ("assignors", "co_located"),
    [(DELIVER_ASSIGNORS, True), ((RoundRobinPartitionAssignor,), False)],
    ids=["range", "roundrobin"],
)
async def test_the_range_assignor_gives_partition_p_of_both_topics_to_one_member(
    settings: Settings, assignors: tuple[type, ...], co_located: bool
) -> None:
    await ensure_topics(settings.kafka_bootstrap, [settings.delayed_topic], PARTITIONS)
    topics = [settings.outbound_topic, settings.delayed_topic]
    consumers = [
        AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.deliver_group}-{co_located}",
            enable_auto_commit=False,
            partition_assignment_strategy=assignors,
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
        for _ in range(2)
    ]
    for consumer in consumers:
        consumer.subscribe(topics)
        await consumer.start()
    try:

        def split() -> bool:
            first, second = (c.assignment() for c in consumers)
            return bool(first) and bool(second) and len(first | second) == 2 * PARTITIONS

        deadline = time.monotonic() + 30
        while not split():
            assert time.monotonic() < deadline, "the group never split the partitions"
            for consumer in consumers:
                await consumer.getmany(timeout_ms=100)
        together = all(
            {tp.partition for tp in c.assignment() if tp.topic == topics[0]}
            == {tp.partition for tp in c.assignment() if tp.topic == topics[1]}
            for c in consumers
        )
        assert together is co_located
    finally:
        for consumer in consumers:
            await consumer.stop()


def delayed_record(headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord("t.delayed", 0, 5, 0, 0, b"k", b"v", None, 1, 1, headers)


def test_records_without_a_readable_due_time_are_due_and_their_own_origin() -> None:
    record = ConsumerRecord(
        "t.delayed", 0, 5, 0, 0, b"k", b"v", None, 1, 1, [(NOT_BEFORE_HEADER, b"soon")]
    )
    assert seconds_until_due(record, 0.0) is None
    assert origin_of(record) == Origin("t.delayed", 0, 5)
    assert ParkedRecord.of(record).times_parked == 0
