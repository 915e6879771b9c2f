"""Commit only what is finished: per partition, the contiguous prefix of finished records.

Records of one partition finish out of order (different accounts, pixels, retries), so the
offset to commit is the first one still unfinished; everything before it is safe.
"""

from __future__ import annotations

from collections import deque

from aiokafka import TopicPartition


class PartitionOffsets:
    """Offsets of one partition: registered in order, finished in any order."""

    __slots__ = ("_finished", "_next_after_last", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._finished: set[int] = set()
        self._next_after_last: int | None = None

    def register(self, offset: int) -> None:
        self._pending.append(offset)
        self._next_after_last = offset + 1

    def finish(self, offset: int) -> None:
        self._finished.add(offset)
        pending, finished = self._pending, self._finished
        while pending and pending[0] in finished:
            finished.discard(pending.popleft())

    @property
    def in_flight(self) -> int:
        return len(self._pending)

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

    def register(self, tp: TopicPartition, offset: int) -> None:
        offsets = self._partitions.get(tp)
        if offsets is None:
            offsets = self._partitions[tp] = PartitionOffsets()
        offsets.register(offset)

    def finish(self, tp: TopicPartition, offset: int) -> None:
        offsets = self._partitions.get(tp)
        if offsets is not None:  # a revoked partition's late finish is ignored
            offsets.finish(offset)

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
