"""The delivered ledger on the real broker: write-behind, rebuild after a crash, the window."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from relay.config import Settings
from relay.errors import BrokerError, ClosedError
from relay.formats.base import OutboundEvent
from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_producer, partition_count
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.ledger import (
    CHUNK_MAX_KEYS,
    DIGEST_BYTES,
    WRITTEN_AT_HEADER,
    DeliveredLedger,
    decode_entry,
    encode_entry,
    ensure_ledger_topic,
    ledger_digest,
    ledger_digests,
)
from tests.broker_fixtures import PARTITIONS, FakeClock, outbound_settings
from tests.conftest import make_settings
from tests.kafka_helpers import produce_records, read_all, wait_for


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return await outbound_settings(
        kafka_bootstrap,
        topic_prefix,
        # Nothing is written by the timer unless a test flushes: "not flushed" is exact.
        RELAY_LEDGER_FLUSH_INTERVAL_S=3600,
        RELAY_LEDGER_FLUSH_KEYS=10**9,
    )


def keys(prefix: str, count: int) -> list[str]:
    """Ledger keys as the outbound codec makes them (32 hex digits)."""
    return [ledger_digest(f"{prefix}-{i}").hex() for i in range(count)]


async def crash(ledger: DeliveredLedger) -> None:
    """The process dies: what was not acknowledged is gone, nothing is flushed."""
    writer = ledger._writer
    assert writer is not None
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer


@contextlib.asynccontextmanager
async def opened(
    settings: Settings,
    producer: BatchProducer,
    metrics: Metrics | None = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[DeliveredLedger]:
    ledger = DeliveredLedger(settings, producer, metrics or Metrics(), clock=clock or time.time)
    await ledger.start()
    try:
        yield ledger
    finally:
        await crash(ledger)


async def test_a_new_instance_rebuilds_the_flushed_keys_of_its_partitions_only(
    settings: Settings, producer: BatchProducer
) -> None:
    per_partition = {p: keys(f"p{p}", 500) for p in range(PARTITIONS)}
    async with opened(settings, producer) as first:
        for p, ks in per_partition.items():
            first.record(p, ks[:200])
            first.record(p, ks[200:])
        assert all(first.seen(k) for ks in per_partition.values() for k in ks)
        await first.flush()

    async with opened(settings, producer) as second:
        assert not second.seen(per_partition[0][0])  # nothing before the rebuild
        stats = await second.rebuild({0, 2})
        assert (stats.partitions, stats.keys) == (2, 1000)
        assert all(second.seen(k) for p in (0, 2) for k in per_partition[p])
        assert not any(second.seen(k) for k in per_partition[1])
        assert len(second) == 1000
        second.forget({0})
        assert not any(second.seen(k) for k in per_partition[0])
        assert all(second.seen(k) for k in per_partition[2])


async def test_ledger_records_pack_many_keys_at_the_outbound_partition_number(
    settings: Settings, producer: BatchProducer
) -> None:
    assert await partition_count(settings.kafka_bootstrap, settings.delivered_topic) is None
    recorded = keys("k", 5000)
    metrics = Metrics()
    async with opened(settings, producer, metrics) as ledger:
        assert await partition_count(settings.kafka_bootstrap, settings.delivered_topic) == 3
        ledger.record(2, recorded)
        assert metrics.registry.get_sample_value("relay_ledger_pending_keys") == 5000
        await ledger.flush()
        assert metrics.registry.get_sample_value("relay_ledger_pending_keys") == 0
        assert (
            metrics.registry.get_sample_value("relay_ledger_keys_total", {"action": "written"})
            == 5000
        )
    records = await read_all(settings.kafka_bootstrap, settings.delivered_topic, 2)
    assert {r.partition for r in records} == {2}
    assert 1 < len(records) < 10  # many keys per record, not one record per key
    assert len({r.key for r in records}) == len(records)  # unique keys: compaction keeps all
    stored = b"".join(decode_entry(r.value) or b"" for r in records)
    assert stored == b"".join(bytes.fromhex(k) for k in recorded)
    for r in records:
        header = dict(r.headers)[WRITTEN_AT_HEADER]
        assert abs(float(header) - time.time()) < 600


async def test_keys_recorded_but_not_flushed_at_a_crash_are_the_only_ones_lost(
    settings: Settings, producer: BatchProducer
) -> None:
    # A lingering producer: a flush that returned before the broker acknowledged would leave
    # the keys unreadable for the rebuild that follows.
    lingering = make_producer(settings.kafka_bootstrap, linger_ms=1500)
    await lingering.start()
    acknowledged, unacknowledged = keys("acked", 300), keys("lost", 300)
    try:
        async with opened(settings, BatchProducer(lingering)) as first:
            first.record(1, acknowledged)
            await first.flush()
            first.record(1, unacknowledged)
            assert all(first.seen(k) for k in unacknowledged)  # in memory, not on the broker

        async with opened(settings, producer) as second:
            await second.rebuild({0, 1, 2})
            assert all(second.seen(k) for k in acknowledged)
            assert not any(second.seen(k) for k in unacknowledged)
    finally:
        await lingering.stop()


async def test_a_flush_cancelled_mid_write_leaves_the_write_to_the_next_flush(
    settings: Settings, producer: BatchProducer
) -> None:
    lingering = make_producer(settings.kafka_bootstrap, linger_ms=1500)
    await lingering.start()
    recorded = keys("cancelled", 100)
    try:
        async with opened(settings, BatchProducer(lingering)) as first:
            first.record(0, recorded)
            flushing = asyncio.create_task(first.flush())
            await wait_for(lambda: not first._pending, 10, "the write to start")
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing
            await first.flush()  # must wait for the write the cancelled flush started

        async with opened(settings, producer) as second:
            await second.rebuild({0})
            assert all(second.seen(k) for k in recorded)
    finally:
        await lingering.stop()


async def test_the_writer_flushes_by_size_without_being_asked(
    kafka_bootstrap: str, topic_prefix: str, producer: BatchProducer
) -> None:
    settings = make_settings(
        kafka_bootstrap, topic_prefix, "http://127.0.0.1:1", RELAY_LEDGER_FLUSH_KEYS=100
    )
    async with opened(settings, producer) as ledger:
        ledger.record(0, keys("size", 100))
        records = await read_all(kafka_bootstrap, settings.delivered_topic, 1)
        assert sum(len(decode_entry(r.value) or b"") for r in records) == 100 * DIGEST_BYTES


async def test_rebuild_and_memory_keep_only_the_window(
    settings: Settings, producer: BatchProducer
) -> None:
    now = time.time()
    clock = FakeClock(now - 2 * settings.ledger_window_s)
    old, recent = keys("old", 50), keys("recent", 50)
    async with opened(settings, producer, clock=clock) as first:
        first.record(0, old)
        await first.flush()
        clock.now = now
        first.record(0, recent)
        await first.flush()
        assert first.evict() == 50  # memory is bounded by the window too
        assert not any(first.seen(k) for k in old)
        assert all(first.seen(k) for k in recent)

    async with opened(settings, producer) as second:
        stats = await second.rebuild({0})
        assert stats.keys == 50
        assert all(second.seen(k) for k in recent)
        assert not any(second.seen(k) for k in old)


async def test_a_large_ledger_rebuilds_completely(
    settings: Settings, producer: BatchProducer
) -> None:
    many = keys("bulk", 100_000)
    async with opened(settings, producer) as first:
        first.record(0, many)
        await first.flush()
    async with opened(settings, producer) as second:
        stats = await second.rebuild({0})
        assert stats.keys == len(second) == 100_000
        assert all(second.seen(k) for k in many[::97])


async def test_a_ledger_of_many_small_records_rebuilds_to_its_end(
    settings: Settings, producer: BatchProducer
) -> None:
    # What a busy worker with a short flush interval leaves: more records than one poll.
    singles = keys("single", 12_000)
    stamp = ((WRITTEN_AT_HEADER, f"{time.time():.3f}".encode()),)
    await ensure_ledger_topic(settings)
    await produce_records(
        settings.kafka_bootstrap,
        [
            OutRecord(
                settings.delivered_topic,
                encode_entry(bytes.fromhex(k)),
                key=str(i).encode(),
                headers=stamp,
                partition=1,
            )
            for i, k in enumerate(singles)
        ],
    )
    async with opened(settings, producer) as ledger:
        stats = await ledger.rebuild({1})
        assert (stats.records, stats.keys) == (12_000, 12_000)
        assert all(ledger.seen(k) for k in singles)


async def test_replayed_outbound_records_are_recognised_after_a_crash(
    settings: Settings, producer: BatchProducer
) -> None:
    events = [
        OutboundEvent(
            kind="web",
            budget_key=f"acct{i % 23}",
            target="pixel1",
            payload={"conversion_id": f"c{i}", "conversion_time": "2026-12-01T09:00:00.000Z"},
        )
        for i in range(600)
    ]
    await produce_records(
        settings.kafka_bootstrap,
        [
            OutRecord(settings.outbound_topic, outbound.encode(e), key=e.budget_key.encode())
            for e in events
        ],
    )
    first_read = await read_all(settings.kafka_bootstrap, settings.outbound_topic, len(events))
    assert {r.partition for r in first_read} == set(range(PARTITIONS))
    delivered: set[str] = set()
    async with opened(settings, producer) as first:
        # Pretend delivery: every other record gets a 2xx, recorded per source partition.
        for index, record in enumerate(first_read):
            if index % 2 == 0:
                key = outbound.decode(record.value).ledger_key
                first.record(record.partition, [key])
                delivered.add(key)
        await first.flush()

    replay = await read_all(settings.kafka_bootstrap, settings.outbound_topic, len(events))
    async with opened(settings, producer) as second:
        await second.rebuild(set(range(PARTITIONS)))
        for record in replay:
            key = outbound.decode(record.value).ledger_key
            assert second.seen(key) == (key in delivered)


async def test_misuse_and_mismatched_partitions_are_refused(
    settings: Settings, producer: BatchProducer
) -> None:
    ledger = DeliveredLedger(settings, producer, Metrics())
    with pytest.raises(ClosedError):
        ledger.record(0, keys("x", 1))
    await ledger.start()
    ledger.record(0, keys("x", 1))
    with pytest.raises(ValueError):
        ledger.record(PARTITIONS, keys("x", 1))
    with pytest.raises(TypeError):
        ledger.record(0, keys("x", 1)[0])
    with pytest.raises(ValueError):
        await ledger.rebuild({PARTITIONS})
    await ledger.close()
    await ledger.close()  # idempotent
    with pytest.raises(ClosedError):
        ledger.record(0, keys("y", 1))

    other = make_settings(
        settings.kafka_bootstrap, settings.topic_prefix + "m", "http://127.0.0.1:1"
    )
    await ensure_topics(other.kafka_bootstrap, [other.outbound_topic], partitions=2)
    await ensure_topics(other.kafka_bootstrap, [other.delivered_topic], partitions=5)
    with pytest.raises(BrokerError, match="partitions"):
        await DeliveredLedger(other, producer, Metrics()).start()


def test_ledger_digests_are_compact_and_stable() -> None:
    hex_key = "0123456789abcdef0123456789abcdef"
    assert ledger_digest(hex_key) == bytes.fromhex(hex_key)
    assert len(ledger_digest("not-hex")) == DIGEST_BYTES
    assert ledger_digest("not-hex") == ledger_digest("not-hex") != ledger_digest("not-hex2")
    assert decode_entry(b"L1" + b"x" * 15) is None
    assert decode_entry(b"L9" + b"x" * 16) is None


async def test_the_key_cap_forgets_the_oldest_keys_first(
    settings: Settings, producer: BatchProducer
) -> None:
    capped = dataclasses.replace(settings, ledger_max_keys=300)
    clock = FakeClock(time.time() - 100)
    chunk_s = settings.ledger_window_s / 60
    oldest, middle, newest = keys("a", 200), keys("b", 200), keys("c", 100)
    async with opened(capped, producer, clock=clock) as ledger:
        ledger.record(1, oldest)
        clock.now += chunk_s  # each in a time chunk of its own, on two partitions
        ledger.record(2, middle)
        clock.now += chunk_s
        ledger.record(1, newest)
        assert len(ledger) == 500  # within the window: only the cap evicts
        assert ledger.evict() == 200
        assert len(ledger) == 300
        assert not any(ledger.seen(k) for k in oldest)
        assert all(ledger.seen(k) for k in middle + newest)
        # The stage asks by digest (computed once per record): the same answers.
        assert all(ledger.seen_digest(ledger_digest(k)) for k in middle + newest)
        assert not any(ledger.seen_digest(ledger_digest(k)) for k in oldest)


async def test_over_the_cap_a_busy_moment_is_forgotten_in_pieces_not_whole(
    settings: Settings, producer: BatchProducer, caplog: pytest.LogCaptureFixture
) -> None:
    # One partition's keys within one time chunk: a busy worker records 100,000s so.
    capped = dataclasses.replace(settings, ledger_max_keys=20_000)
    recorded = keys("busy", 3 * CHUNK_MAX_KEYS)
    async with opened(capped, producer, clock=FakeClock(time.time())) as ledger:
        for start in range(0, len(recorded), 500):
            ledger.record(1, recorded[start : start + 500])
        forgotten = ledger.evict()
        # The oldest go, a chunk of at most CHUNK_MAX_KEYS (+ one record's worth) at a time:
        # not the whole moment with them.
        assert len(recorded) - 20_000 <= forgotten <= len(recorded) - 20_000 + CHUNK_MAX_KEYS
        assert len(ledger) == len(recorded) - forgotten
        assert all(ledger.seen(k) for k in recorded[forgotten:])
        assert not any(ledger.seen(k) for k in recorded[:forgotten])
        # At the cap every write forgets some: one line a minute says so, not one per write.
        for round_ in range(3):
            more = keys(f"more-{round_}", 16_000)  # over the cap each time
            for start in range(0, len(more), 4000):
                ledger.record(1, more[start : start + 4000])
            assert ledger.evict() > 0
        lines = [r.getMessage() for r in caplog.records if "RELAY_LEDGER_MAX_KEYS" in r.message]
        assert lines == [
            f"delivered ledger: over RELAY_LEDGER_MAX_KEYS (20000); forgot "
            f"{forgotten} keys before the window's end"
        ]


def test_a_batch_of_keys_converts_as_each_key_does() -> None:
    codec = keys("batch", 50)  # the outbound codec's: 32 hex digits
    spaced = "ab" * 15 + "  "  # 32 characters that fromhex reads as 15 bytes
    odd = ["not-hex-at-all", spaced, codec[0].upper(), "0" * 31, "z" * 32]
    for batch in (codec, odd, codec[:3] + odd + codec[3:6], [spaced, *codec[:2]]):
        assert ledger_digests(batch) == b"".join(ledger_digest(k) for k in batch)
