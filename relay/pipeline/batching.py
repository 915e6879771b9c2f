"""Per-account lanes: a queue of open batches per target (pixel), filled up to the batch
size or until the linger expires. The deliver stage owns one lane per budget key.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from relay.pipeline.ratelimit import TokenBucket


@dataclass(slots=True)
class Pending:
    """One outbound record held by the deliver stage until X or the DLQ took it."""

    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes
    payload: dict[str, Any]
    timestamp_ms: int = -1  # the input record's Kafka timestamp (end-to-end latency)
    headers: tuple[tuple[str, bytes], ...] = ()  # carried to a dead letter (redrive count)


@dataclass(slots=True)
class Batch:
    kind: str
    target: str
    items: list[Pending]
    attempts: int = 0
    first_attempt_at: float | None = None  # epoch seconds

    def split(self) -> tuple[Batch, Batch]:
        half = len(self.items) // 2
        return (
            Batch(self.kind, self.target, self.items[:half], self.attempts, self.first_attempt_at),
            Batch(self.kind, self.target, self.items[half:], self.attempts, self.first_attempt_at),
        )


@dataclass
class Lane:
    """The events of one budget key (ad account): open batches, ready batches, its bucket."""

    key: str
    bucket: TokenBucket
    batch_size: int
    linger_s: float
    open: dict[tuple[str, str], list[Pending]] = field(default_factory=dict)
    opened_at: dict[tuple[str, str], float] = field(default_factory=dict)
    ready: deque[Batch] = field(default_factory=deque)
    held: int = 0

    def add(self, kind: str, target: str, item: Pending, now: float | None = None) -> None:
        slot = (kind, target)
        items = self.open.get(slot)
        if items is None:
            items = self.open[slot] = []
            self.opened_at[slot] = time.monotonic() if now is None else now
        items.append(item)
        self.held += 1
        if len(items) >= self.batch_size:
            self._close(slot)

    def _close(self, slot: tuple[str, str]) -> None:
        items = self.open.pop(slot)
        self.opened_at.pop(slot, None)
        self.ready.append(Batch(slot[0], slot[1], items))

    def flush_due(self, now: float, *, everything: bool = False) -> float | None:
        """Close batches whose linger expired (all with `everything`); return the seconds
        until the next one is due, or None when nothing is open."""
        next_due: float | None = None
        for slot, opened in list(self.opened_at.items()):
            due = opened + self.linger_s
            if everything or due <= now:
                self._close(slot)
            else:
                wait = due - now
                next_due = wait if next_due is None else min(next_due, wait)
        return next_due

    def done(self, count: int) -> None:
        self.held -= count

    def drop_partitions(self, tps: set[TopicPartition]) -> int:
        """Forget the events of revoked partitions (their new owner reads them again)."""
        dropped = 0
        for slot in list(self.open):
            kept = [p for p in self.open[slot] if p.tp not in tps]
            dropped += len(self.open[slot]) - len(kept)
            if kept:
                self.open[slot] = kept
            else:
                del self.open[slot]
                self.opened_at.pop(slot, None)
        for batch in list(self.ready):
            kept = [p for p in batch.items if p.tp not in tps]
            dropped += len(batch.items) - len(kept)
            batch.items = kept
        self.ready = deque(b for b in self.ready if b.items)
        self.held -= dropped
        return dropped
