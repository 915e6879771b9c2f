"""The delivered ledger: which events X already accepted, so that a replay is not sent twice.

    record(partition, keys)  after X answered 2xx: remembered at once, written behind
    seen(key)                on the hot path: one set lookup, no await
    rebuild(partitions)      on assignment: the recent window of those partitions, from Kafka
    forget(partitions)       on revoke: their keys leave memory

Topic `<prefix>.delivered` has the partition count of `<prefix>.outbound`, and a ledger entry
for events of outbound partition p goes to ledger partition p, so that the owner of p rebuilds
exactly the keys it may see replayed. One record holds many keys:

    key     = a unique id per ledger record (not the budget key: compaction keeps one
              record per key, and every record holds other keys)
    value   = b"L1" + n x 16-byte digests of ledger keys
    headers = relay.ledger.written_at (epoch seconds)

Duplicates after a kill -9 are bounded by what was in flight: requests X may have answered
(`RELAY_MAX_IN_FLIGHT_REQUESTS` x batch size) plus keys recorded but not yet acknowledged
(those waiting for the next write, which starts every `RELAY_LEDGER_FLUSH_INTERVAL_S` or once
`RELAY_LEDGER_FLUSH_KEYS` wait, and those of the one write in flight). A key is forgotten
only early, never invented: a false "seen" would lose an event, a false "not seen" sends a
duplicate.

Memory: each key is its 16 bytes in a `DigestSet` (two 64-bit words in a flat table at most
5/8 full) and again in its time chunk's bytes: about 50 bytes a key (as 128-bit ints in a
`set`, referenced from their chunk, they cost about 90). `RELAY_LEDGER_MAX_KEYS` caps them:
above it the oldest chunks go before the window ends (forgotten early, never invented).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from relay.config import Settings
from relay.errors import BrokerError, ClosedError
from relay.kafka import (
    BatchProducer,
    OutRecord,
    ensure_topic_like,
    make_consumer,
    start_even_if_cancelled,
)
from relay.lifecycle import Lifecycle, State
from relay.observability.logs import RateLimitedLogger
from relay.observability.metrics import Metrics
from relay.pipeline.digest_set import DigestSet

log = logging.getLogger(__name__)

VERSION_TAG: Final = b"L1"
DIGEST_BYTES: Final = 16
MAX_KEYS_PER_RECORD: Final = 4096  # 64 KiB of digests per ledger record
WRITTEN_AT_HEADER: Final = "relay.ledger.written_at"
CHUNKS_PER_WINDOW: Final = 60  # eviction granularity: a key lives at most window * (1 + 1/60)
# A chunk also ends at this many keys: over RELAY_LEDGER_MAX_KEYS the oldest keys go a chunk
# at a time, and a chunk of 15 s of a busy partition (100,000s of keys) would stall the event
# loop for its removal (~1 us a key) and forget far more than the excess.
CHUNK_MAX_KEYS: Final = 8192
OVER_CAP_LOG_INTERVAL_S: Final = 60.0
REBUILD_TIMEOUT_S: Final = 60.0
REBUILD_POLL_MS: Final = 100


def ledger_digest(ledger_key: str) -> bytes:
    """The 16 bytes a ledger key is kept as: its own bytes when it is 32 hex digits (the
    outbound codec's keys), else a BLAKE2b digest of it."""
    if len(ledger_key) == 2 * DIGEST_BYTES:
        try:  # not contextlib.suppress: the deliver stage's intake runs this per event
            digest = bytes.fromhex(ledger_key)
        except ValueError:
            pass
        else:
            if len(digest) == DIGEST_BYTES:
                return digest
    return hashlib.blake2b(ledger_key.encode(), digest_size=DIGEST_BYTES).digest()


def ledger_digests(ledger_keys: Sequence[str]) -> bytes:
    """The `ledger_digest`s of these keys, end to end. A run of the outbound codec's keys
    (32 hex digits each) is converted in one call: this runs for every delivered batch."""
    if set(map(len, ledger_keys)) == {2 * DIGEST_BYTES}:
        try:
            digests = bytes.fromhex("".join(ledger_keys))
        except ValueError:
            pass
        else:
            if len(digests) == DIGEST_BYTES * len(ledger_keys):  # no whitespace skipped
                return digests
    return b"".join(ledger_digest(k) for k in ledger_keys)


def encode_entry(digests: bytes) -> bytes:
    return VERSION_TAG + digests


def decode_entry(value: bytes | None) -> bytes | None:
    """The digests of a ledger record value; None for a value this release cannot read."""
    if not value or not value.startswith(VERSION_TAG):
        return None
    digests = value[len(VERSION_TAG) :]
    return digests if len(digests) % DIGEST_BYTES == 0 else None


def written_at(record: ConsumerRecord) -> float:
    """When a ledger record was written (its header, else the record's timestamp)."""
    for name, raw in record.headers or ():
        if name == WRITTEN_AT_HEADER:
            with contextlib.suppress(ValueError):
                return float(raw)
    return float(record.timestamp) / 1000.0


class _Chunk:
    """Keys of one partition remembered within one slice of time (the unit of eviction):
    their digests end to end, 16 bytes a key."""

    __slots__ = ("digests", "first_at", "last_at")

    def __init__(self, first_at: float):
        self.first_at = first_at
        self.last_at = first_at
        self.digests = bytearray()

    def __len__(self) -> int:
        return len(self.digests) // DIGEST_BYTES


@dataclass(frozen=True, slots=True)
class RebuildStats:
    partitions: int
    records: int
    keys: int
    seconds: float


class DeliveredLedger(Lifecycle):
    """Delivered ledger keys in memory for the owned partitions, written behind to Kafka."""

    what = "the delivered ledger"

    def __init__(
        self,
        settings: Settings,
        producer: BatchProducer,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.topic = settings.delivered_topic
        self._producer = producer
        self._metrics = metrics
        self._clock = clock  # epoch seconds: compared with Kafka timestamps
        self._window_s = settings.ledger_window_s
        self._chunk_span_s = settings.ledger_window_s / CHUNKS_PER_WINDOW
        self._keys = DigestSet(max_keys=settings.ledger_max_keys)
        self._ops_log = RateLimitedLogger(log, OVER_CAP_LOG_INTERVAL_S)
        self._forgotten_early = 0  # keys forgotten over the cap, not yet in a log line
        self._chunks: dict[int, deque[_Chunk]] = {}
        self._rebuilt: set[int] = set()  # partitions whose Kafka history is in memory
        self._pending: dict[int, bytearray] = {}  # digests not yet handed to the producer
        self._pending_keys = 0
        self._unacked_keys = 0
        self._write_lock = asyncio.Lock()  # one write in flight: it bounds what a crash loses
        self._current: asyncio.Task[BaseException | None] | None = None
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._partitions = 0  # of the ledger topic, known once started
        self.on_written: Callable[[], None] | None = None  # after each acknowledged write

    # -- lifecycle ----------------------------------------------------------------------

    async def _open(self) -> None:
        self._partitions = await ensure_ledger_topic(self.settings)
        self._writer = asyncio.create_task(self._write_loop(), name="ledger-writer")

    async def _close(self) -> None:
        """Write and acknowledge everything recorded, then stop."""
        if self._writer is not None:
            async with self._write_lock:  # never cancelled in the middle of a write
                self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._write_pending()

    # -- the hot path -------------------------------------------------------------------

    def seen(self, ledger_key: str) -> bool:
        """Whether X already accepted the event with this ledger key (within the window)."""
        return ledger_digest(ledger_key) in self._keys

    @property
    def unacked_keys(self) -> int:
        """Keys recorded whose write the broker has not acknowledged: a crash forgets them."""
        return self._unacked_keys

    def seen_digest(self, digest: bytes) -> bool:
        """`seen` of the key whose `ledger_digest` this is (the stage computes it once)."""
        return digest in self._keys

    def record(self, partition: int, ledger_keys: Sequence[str]) -> None:
        """Remember keys X accepted for outbound partition `partition`; written behind."""
        if isinstance(ledger_keys, str):
            raise TypeError("record() takes a sequence of ledger keys, not one string")
        self._require_open()
        if not 0 <= partition < self._partitions:
            raise ValueError(f"partition {partition} is not one of {self.topic}'s")
        if not ledger_keys:
            return
        joined = ledger_digests(ledger_keys)
        self._remember(partition, joined, self._clock())
        self._pending.setdefault(partition, bytearray()).extend(joined)
        count = len(ledger_keys)
        self._pending_keys += count
        self._unacked_keys += count
        self._metrics.ledger_keys.labels("recorded").inc(count)
        self._metrics.ledger_pending.set(self._unacked_keys)
        if self._pending_keys >= self.settings.ledger_flush_keys:
            self._wake.set()

    # -- writing ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Return when every key recorded so far is acknowledged by the broker."""
        if self.state is State.NEW:
            raise ClosedError(f"{self.what} is not started")
        await self._write_pending()

    async def _write_loop(self) -> None:
        interval = self.settings.ledger_flush_interval_s
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: it may drop the cancel
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_pending()
            except BrokerError as exc:  # kept pending: the next round tries again
                log.warning("delivered ledger: write failed, will retry: %s", exc)
            self.evict()

    async def _write_pending(self) -> None:
        # Under the lock, so that a flush waits for a write already started. The write itself
        # is a task: a caller cancelled while waiting does not abandon its bookkeeping.
        async with self._write_lock:
            if self._current is not None:
                await asyncio.shield(self._current)  # a failed write put its keys back
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
            count, self._pending_keys = self._pending_keys, 0
            self._current = asyncio.create_task(self._write(pending, count))
            error = await asyncio.shield(self._current)
        if error is not None:
            raise BrokerError(f"the ledger write to {self.topic} failed: {error}") from error

    async def _write(self, pending: dict[int, bytearray], count: int) -> BaseException | None:
        records = list(self._ledger_records(pending, self._clock()))
        try:
            futures = await self._producer.send_many(records)
            await asyncio.gather(*futures)
        except (KafkaError, BrokerError, OSError) as exc:
            for partition, digests in pending.items():
                self._pending[partition] = digests + self._pending.get(partition, b"")
            self._pending_keys += count
            self._metrics.ledger_write_failures.inc()
            return exc
        self._unacked_keys -= count
        self._metrics.ledger_keys.labels("written").inc(count)
        self._metrics.ledger_pending.set(self._unacked_keys)
        if self.on_written is not None:
            self.on_written()
        return None

    def _ledger_records(self, pending: dict[int, bytearray], now: float) -> Iterable[OutRecord]:
        stamp = f"{now:.3f}".encode()
        step = MAX_KEYS_PER_RECORD * DIGEST_BYTES
        for partition, digests in pending.items():
            for start in range(0, len(digests), step):
                yield OutRecord(
                    self.topic,
                    encode_entry(bytes(digests[start : start + step])),
                    # A unique key per record: the topic is compact,delete, and compaction
                    # keeps only the last record of a key; unique keys make it drop nothing,
                    # so only retention (twice the window) removes entries.
                    key=uuid.uuid4().hex.encode(),
                    headers=((WRITTEN_AT_HEADER, stamp),),
                    partition=partition,
                )

    # -- memory -------------------------------------------------------------------------

    def _remember(self, partition: int, digests: bytes, at: float) -> None:
        chunks = self._chunks.setdefault(partition, deque())
        chunk = chunks[-1] if chunks else None
        if (
            chunk is None
            or at - chunk.first_at >= self._chunk_span_s
            or at < chunk.first_at
            or len(chunk) >= CHUNK_MAX_KEYS
        ):
            chunk = _Chunk(at)
            chunks.append(chunk)
        chunk.last_at = max(chunk.last_at, at)
        chunk.digests += digests
        self._keys.update(digests)
        self._metrics.ledger_held.set(len(self._keys))

    def _drop(self, chunk: _Chunk) -> int:
        # A key recorded again in a later chunk leaves with the earlier one: forgotten early
        # (a possible duplicate), never remembered wrongly.
        self._keys.difference_update(chunk.digests)
        return len(chunk)

    def evict(self) -> int:
        """Drop the keys that left the window, and the oldest beyond
        `RELAY_LEDGER_MAX_KEYS`; returns how many."""
        cutoff = self._clock() - self._window_s
        evicted = 0
        for chunks in self._chunks.values():
            while chunks and chunks[0].last_at < cutoff:
                evicted += self._drop(chunks.popleft())
        early = 0
        while len(self._keys) > self.settings.ledger_max_keys:
            oldest = min(
                (chunks for chunks in self._chunks.values() if chunks),
                key=lambda chunks: chunks[0].first_at,
            )
            early += self._drop(oldest.popleft())
        if early:
            # At the cap this runs every write: one line a minute, with the keys since the last.
            self._forgotten_early += early
            if self._ops_log.log(
                "over_cap",
                logging.WARNING,
                "delivered ledger: over RELAY_LEDGER_MAX_KEYS (%d); forgot %d keys before "
                "the window's end",
                self.settings.ledger_max_keys,
                self._forgotten_early,
            ):
                self._forgotten_early = 0
            evicted += early
        if evicted:
            self._metrics.ledger_keys.labels("evicted").inc(evicted)
            self._metrics.ledger_held.set(len(self._keys))
        return evicted

    def forget(self, partitions: set[int]) -> None:
        """Drop the keys of partitions this worker no longer owns (their writes still go)."""
        for partition in partitions:
            for chunk in self._chunks.pop(partition, ()):
                self._drop(chunk)
            self._rebuilt.discard(partition)
        self._metrics.ledger_held.set(len(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    # -- rebuilding ---------------------------------------------------------------------

    async def rebuild(self, partitions: set[int]) -> RebuildStats:
        """Read the window of these ledger partitions into memory (those already read are
        kept as they are), up to the high-water mark seen at the start."""
        self._require_open()
        if not all(0 <= p < self._partitions for p in partitions):
            raise ValueError(f"partitions {sorted(partitions)} are not all {self.topic}'s")
        started = time.monotonic()
        todo = sorted(set(partitions) - self._rebuilt)
        if not todo:
            return RebuildStats(0, 0, 0, 0.0)
        self._rebuilt.update(todo)
        try:
            records, keys = await self._read_window(todo)
        except BaseException:
            self._rebuilt.difference_update(todo)
            raise
        self._metrics.ledger_keys.labels("rebuilt").inc(keys)
        stats = RebuildStats(len(todo), records, keys, time.monotonic() - started)
        log.info(
            "delivered ledger: rebuilt %d keys from %d records of %d partitions in %.2fs",
            keys,
            records,
            len(todo),
            stats.seconds,
        )
        return stats

    async def _read_window(self, partitions: list[int]) -> tuple[int, int]:
        consumer = make_consumer(
            self.settings,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=REBUILD_POLL_MS,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        try:
            await start_even_if_cancelled(consumer)  # a stop may cancel a rebuild midway
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            cutoff = self._clock() - self._window_s
            remaining = await self._seek_window(consumer, tps, cutoff)
            ends = await consumer.end_offsets(list(remaining)) if remaining else {}
            return await self._read_until_end(consumer, remaining, ends, cutoff)
        except KafkaError as exc:
            raise BrokerError(f"cannot rebuild the ledger from {self.topic}: {exc}") from exc
        finally:
            await consumer.stop()

    async def _seek_window(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], cutoff: float
    ) -> set[TopicPartition]:
        """Position each partition at the window's first record; returns those to read."""
        try:
            found = await consumer.offsets_for_times({tp: int(cutoff * 1000) for tp in tps})
        except (KafkaError, OSError) as exc:  # no answer: read from the beginning instead
            log.info("delivered ledger: no offsets by time (%s), reading from the start", exc)
            await consumer.seek_to_beginning(*tps)
            return set(tps)
        remaining = set()
        for tp in tps:
            hit = found.get(tp)
            if hit is not None:  # None: nothing written since the cutoff
                consumer.seek(tp, hit.offset)
                remaining.add(tp)
        return remaining

    async def _read_until_end(
        self,
        consumer: AIOKafkaConsumer,
        remaining: set[TopicPartition],
        ends: dict[TopicPartition, int],
        cutoff: float,
    ) -> tuple[int, int]:
        # The end is the high-water mark of the first fetch (end_offsets may lag behind it on
        # some brokers); what is written meanwhile is recorded in memory by this process.
        targets: dict[TopicPartition, int] = {}
        loaded: dict[int, list[tuple[float, bytes]]] = {}
        records = keys = 0
        deadline = time.monotonic() + REBUILD_TIMEOUT_S
        while remaining:
            batch = await consumer.getmany(
                *remaining, timeout_ms=REBUILD_POLL_MS, max_records=10_000
            )
            for tp, messages in batch.items():
                for message in messages:
                    at = written_at(message)
                    digests = decode_entry(message.value)
                    if digests is None:
                        log.warning("delivered ledger: skipped an unreadable record")
                        continue
                    if at < cutoff:
                        continue
                    loaded.setdefault(tp.partition, []).append((at, digests))
                    records += 1
                    keys += len(digests) // DIGEST_BYTES
            for tp in list(remaining):
                if tp not in targets:
                    highwater = consumer.highwater(tp)
                    if highwater is None:
                        continue  # no fetch answer for it yet
                    targets[tp] = max(highwater, ends.get(tp, 0))
                if await consumer.position(tp) >= targets[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() > deadline:
                raise BrokerError(f"rebuilding the ledger from {self.topic} timed out")
        for partition, entries in loaded.items():
            if partition in self._rebuilt:  # else revoked (forgotten) during the read
                self._load(partition, entries)
        return records, keys

    def _load(self, partition: int, entries: list[tuple[float, bytes]]) -> None:
        # Rebuilt chunks go before what this process recorded meanwhile: oldest first.
        newer = self._chunks.pop(partition, deque())
        for at, digests in entries:
            self._remember(partition, digests, at)
        self._chunks.setdefault(partition, deque()).extend(newer)


async def ensure_ledger_topic(settings: Settings) -> int:
    """`<prefix>.delivered`, partitioned like the outbound topic; returns the count."""
    retention_ms = int(2 * settings.ledger_window_s * 1000)
    return await ensure_topic_like(
        settings,
        settings.delivered_topic,
        settings.outbound_topic,
        {"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)},
    )
