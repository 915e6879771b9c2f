"""Commit only what is finished: per partition, the contiguous prefix of finished records.

Records of one partition finish out of order (different accounts, pixels, retries), so the
offset to commit is the first one still unfinished; everything before it is safe.

The unit of bookkeeping is a run of records that finish together: one record (`register`,
`finish`: the deliver stage, whose records finish one by one) or a whole fetched run of a
partition (`register_run`, `finish_run`: the ingest stage, whose records finish per chunk),
so that a chunk of thousands of records costs one entry, not one per record. A record that
carries several events (an outbound bundle) is registered with their number and finishes
when each of them has (`register(offset, events)`, one `finish` per event).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from aiokafka import TopicPartition


class PartitionOffsets:
    """Runs of offsets of one partition: registered in order, finished in any order.

    A run is named by its first offset; `_last` holds the last offset and record count of
    runs longer than one record (a single record, the common case of `register`, needs none).
    """

    __slots__ = ("_finished", "_held", "_last", "_next_after_last", "_pending", "_unsettled")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # first offsets of the runs not yet released
        self._finished: set[int] = set()
        self._last: dict[int, tuple[int, int]] = {}  # first -> (last offset, record count)
        self._held = 0
        self._next_after_last: int | None = None
        self._unsettled: dict[int, int] = {}  # a record of several events -> those not finished

    def register(self, offset: int, events: int = 1) -> None:
        """One record, finished after `events` calls of `finish` (its events, one by one)."""
        if events > 1:
            self._unsettled[offset] = events
            self.register_run(offset, offset, events)
            return
        self._pending.append(offset)
        self._held += 1
        self._next_after_last = offset + 1

    def register_run(self, first: int, last: int, count: int) -> None:
        """`count` records from `first` to `last` (gaps allowed) that finish together."""
        if count == 1 and first == last:
            self.register(first)
            return
        self._pending.append(first)
        self._last[first] = (last, count)
        self._held += count
        self._next_after_last = last + 1

    def finish(self, offset: int) -> None:
        """The record (or the run starting, or one event of the record) at `offset` is
        finished."""
        unsettled = self._unsettled
        if unsettled:
            left = unsettled.get(offset)
            if left is not None:
                if left > 1:
                    unsettled[offset] = left - 1
                    return
                del unsettled[offset]
        self._finished.add(offset)
        pending, finished = self._pending, self._finished
        while pending and pending[0] in finished:
            first = pending.popleft()
            finished.discard(first)
            run = self._last.pop(first, None)
            self._held -= 1 if run is None else run[1]

    @property
    def in_flight(self) -> int:
        """Records registered and not yet released (finished ones behind an open one count)."""
        return self._held

    def committable(self) -> int | None:
        """The offset to commit (next to read), or None when nothing was registered yet."""
        if self._pending:
            return self._pending[0]
        return self._next_after_last


class OffsetTracker:
    """Per-partition offsets of the records a stage holds; tells what can be committed."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._committed: dict[TopicPartition, int] = {}

    def _offsets(self, tp: TopicPartition) -> PartitionOffsets:
        offsets = self._partitions.get(tp)
        if offsets is None:
            offsets = self._partitions[tp] = PartitionOffsets()
        return offsets

    def register(self, tp: TopicPartition, offset: int, events: int = 1) -> None:
        self._offsets(tp).register(offset, events)

    def registrar(self, tp: TopicPartition) -> Callable[[int, int], None]:
        """`register` for the records of `tp` (one lookup for a fetched run of them)."""
        return self._offsets(tp).register

    def register_run(self, tp: TopicPartition, first: int, last: int, count: int) -> None:
        """`count` records of `tp` from `first` to `last`, finished together by `finish_run`."""
        self._offsets(tp).register_run(first, last, count)

    def finish(self, tp: TopicPartition, offset: int) -> None:
        offsets = self._partitions.get(tp)
        if offsets is not None:  # a revoked partition's late finish is ignored
            offsets.finish(offset)

    def finish_run(self, tp: TopicPartition, first: int) -> None:
        """The run registered at `first` is finished, all its records at once."""
        self.finish(tp, first)

    def in_flight(self, tps: set[TopicPartition] | None = None) -> int:
        return sum(o.in_flight for tp, o in self._partitions.items() if tps is None or tp in tps)

    def to_commit(self) -> dict[TopicPartition, int]:
        """Offsets that moved since the last `mark_committed`."""
        result: dict[TopicPartition, int] = {}
        for tp, offsets in self._partitions.items():
            offset = offsets.committable()
            if offset is not None and self._committed.get(tp) != offset:
                result[tp] = offset
        return result

    def committed(self, tp: TopicPartition) -> int | None:
        """The offset this tracker last committed for `tp` (None before the first commit)."""
        return self._committed.get(tp)

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._partitions.pop(tp, None)
            self._committed.pop(tp, None)
