"""Per budget key (ad account): the queue of what waits to go to X, and the table of lanes.

A lane holds its events as batches: web events gather per pixel until the batch size or the
linger; each app event is a batch of one (one conversion per request), so an app lane is a
window of single requests sent many at a time. Batches of a target X refused wait aside
(`waiting`) so that the account's other targets keep going. Caps in events and bytes tell
the stage when to stop reading the lane's partitions.

Lanes idle for a while are reclaimed; their token bucket stays in `LaneTable.buckets` (a few
hundred bytes each) for a window, so 10,000 accounts cost little, and a returning account
does not start from an empty bucket again. Buckets of revoked partitions are dropped: a new
owner of the account cannot know what this one spent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from relay.pipeline.dlq import Origin
from relay.pipeline.fifo import Fifo
from relay.pipeline.outbound import Routed
from relay.pipeline.ratelimit import TokenBucket
from relay.pipeline.wakeup import Wakeup


@dataclass(slots=True)
class Pending:
    """One outbound record held by the deliver stage until X or the DLQ took it."""

    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes
    routed: Routed
    origin: Origin | None = None  # a parked record's outbound origin (else tp and offset)
    times_parked: int = 0
    timestamp_ms: int = -1  # the input record's Kafka timestamp (end-to-end latency)
    headers: tuple[tuple[str, bytes], ...] = ()  # carried to a dead letter (redrive count)

    @property
    def source(self) -> Origin:
        return self.origin or Origin(self.tp.topic, self.tp.partition, self.offset)

    @property
    def size(self) -> int:
        return len(self.value)


@dataclass(slots=True)
class Batch:
    kind: str
    target: str
    items: list[Pending]
    attempts: int = 0  # every try
    first_attempt_at: float | None = None  # epoch seconds
    charged: int = 0  # tries counted against RELAY_MAX_ATTEMPTS (not outages, 401s, 429s)

    def split(self) -> tuple[Batch, Batch]:
        return self.split_at(len(self.items) // 2)

    def split_at(self, count: int) -> tuple[Batch, Batch]:
        head, tail = self.items[:count], self.items[count:]
        return (
            Batch(self.kind, self.target, head, self.attempts, self.first_attempt_at, self.charged),
            Batch(self.kind, self.target, tail, self.attempts, self.first_attempt_at, self.charged),
        )


@dataclass(eq=False, slots=True)
class Lane:
    """The events of one budget key: open batches, ready batches, held targets' batches."""

    key: str
    bucket: TokenBucket
    batch_size: int
    linger_s: float
    credential: str = "default"
    account: str = ""  # the budget key (lanes of one account with other credentials share it)
    open: dict[str, list[Pending]] = field(default_factory=dict)
    opened_at: dict[str, float] = field(default_factory=dict)
    # Made when a batch is ready, dropped once empty; a list-based queue, not a deque (760
    # bytes): over a backlog, each of 10,000 lanes has a batch ready.
    _ready: Fifo[Batch] | None = None
    waiting: dict[tuple[str, str], deque[Batch]] = field(default_factory=dict)
    held: int = 0
    held_bytes: int = 0
    in_flight: int = 0  # requests
    paused_until: float = 0.0  # monotonic; a retry's backoff
    # Usually one partition (an account's outbound one, maybe its delayed one): a tuple of
    # them, not a 216-byte set.
    partitions: tuple[TopicPartition, ...] = ()
    last_active: float = 0.0
    closed: bool = False  # its partitions were revoked: nothing of it is retried
    parking: bool = False  # a park of its held targets' events is under way
    wakeup: Wakeup = field(default_factory=Wakeup)  # not asyncio.Event: 10,000s of lanes
    # The record key its events share (the budget key's bytes): one object, not one a record.
    record_key: bytes | None = None

    @property
    def ready(self) -> Sequence[Batch]:
        """The batches ready to go, oldest first (read-only: an empty tuple when none)."""
        return self._ready if self._ready is not None else ()

    def _queue(self) -> Fifo[Batch]:
        ready = self._ready
        if ready is None:
            ready = self._ready = Fifo()
        return ready

    def _popleft(self) -> Batch:
        ready = self._ready
        assert ready is not None
        batch = ready.popleft()
        if not ready:
            self._ready = None
        return batch

    def add(self, item: Pending, now: float) -> None:
        routed = item.routed
        self.held += 1
        self.held_bytes += len(item.value)  # item.size, without the property call
        key = item.key
        if key is not None:
            if key == self.record_key:
                item.key = self.record_key  # equal bytes: the lane's one object instead
            else:
                self.record_key = key  # the first (or another) key: later ones share it
        tp = item.tp
        if tp not in self.partitions:
            self.partitions += (tp,)
        self.last_active = now
        if routed.kind == "app":  # one conversion per request: ready at once
            self._queue().append(Batch("app", routed.target, [item]))
            return
        items = self.open.get(routed.target)
        if items is None:
            items = self.open[routed.target] = []
            self.opened_at[routed.target] = now
        items.append(item)
        if len(items) >= self.batch_size:
            self._close(routed.target)

    def _close(self, target: str) -> None:
        items = self.open.pop(target)
        self.opened_at.pop(target, None)
        if not self.open:  # a dict keeps its table when emptied: 10,000 lanes, 2 x 120 bytes
            self.open, self.opened_at = {}, {}
        # A lane behind its linger (many accounts, a busy loop) would queue many small
        # batches of one pixel: the events join the one not yet sent instead.
        for batch in reversed(self.ready):
            if batch.target == target and batch.kind == "web" and batch.attempts == 0:
                room = self.batch_size - len(batch.items)
                if room > 0:
                    batch.items += items[:room]
                    items = items[room:]
                break
        if items:
            self._queue().append(Batch("web", target, items))

    def _top_up(self, batch: Batch) -> None:
        """A batch about to go takes what its pixel gathered since it closed (never a
        retried one: a split isolates bad events, a retry keeps what X saw)."""
        if batch.kind != "web" or batch.attempts or len(batch.items) >= self.batch_size:
            return
        items = self.open.get(batch.target)
        if not items:
            return
        room = self.batch_size - len(batch.items)
        batch.items += items[:room]
        del items[:room]
        if not items:
            del self.open[batch.target]
            self.opened_at.pop(batch.target, None)

    def flush_due(
        self, now: float, *, everything: bool = False, linger_s: float | None = None
    ) -> float | None:
        """Close batches whose linger (`linger_s`, else the lane's) expired (all with
        `everything`); return the seconds until the next one is due, or None when nothing
        is open."""
        next_due: float | None = None
        # Before X's first answer the first request carries only what the empty-started
        # bucket holds (often one event): filling a batch gains nothing, so it goes at once
        # (X's answer then tells the budget; later batches linger).
        first = not self.bucket.server_known and not self.bucket.in_flight
        linger = 0.0 if first else (self.linger_s if linger_s is None else linger_s)
        for target, opened in list(self.opened_at.items()):
            due = opened + linger
            if everything or due <= now:
                self._close(target)
            else:
                wait = due - now
                next_due = wait if next_due is None else min(next_due, wait)
        return next_due

    def next_ready(self, held: Callable[[str, str], bool]) -> Batch | None:
        """The first ready batch whose target is not held; held ones are set aside."""
        while self._ready:
            batch = self._ready[0]
            if not held(batch.kind, batch.target):
                self._top_up(batch)
                return batch
            self._popleft()
            self.waiting.setdefault((batch.kind, batch.target), deque()).append(batch)
        return None

    def release_waiting(self, held: Callable[[str, str], bool]) -> None:
        """Targets no longer held: their batches go first again."""
        for slot in [s for s in self.waiting if not held(*s)]:
            self._queue().extendleft(reversed(self.waiting.pop(slot)))

    def take(self, batch: Batch, count: int) -> Batch:
        """Remove the first `count` events of `batch` (the head of `ready`) to send them."""
        if count >= len(batch.items):
            self._popleft()
            return batch
        head, tail = batch.split_at(count)
        self._queue()[0] = tail
        return head

    def take_waiting(self, slot: tuple[str, str]) -> Batch:
        """One event of a held target, to probe X with."""
        queue = self.waiting[slot]
        batch = queue[0]
        if len(batch.items) <= 1:
            queue.popleft()
        else:
            head, queue[0] = batch.split_at(1)
            batch = head
        if not queue:
            del self.waiting[slot]
        return batch

    def take_oldest(self, count: int) -> list[Pending]:
        """Up to `count` of the oldest events not yet sent, to park them: the oldest are
        the ones that hold the partition's committed prefix back."""
        taken: list[Pending] = []
        while self._ready and len(taken) < count:
            batch = self._ready[0]
            room = count - len(taken)
            if len(batch.items) <= room:
                taken += self._popleft().items
            else:
                taken += batch.items[:room]
                del batch.items[:room]
        for target in list(self.open):
            room = count - len(taken)
            if room <= 0:
                break
            taken += self.open[target][:room]
            del self.open[target][:room]
            if not self.open[target]:
                del self.open[target]
                self.opened_at.pop(target, None)
        self.done(taken)
        return taken

    def take_waiting_overflow(self, keep: int) -> list[Pending]:
        """Events of held targets but the newest `keep` of each, to park them."""
        taken: list[Pending] = []
        for slot, queue in list(self.waiting.items()):
            items = [p for batch in queue for p in batch.items]
            if len(items) <= keep:
                continue
            taken += items[: len(items) - keep]
            kept = items[len(items) - keep :]
            self.waiting[slot] = deque([Batch(slot[0], slot[1], kept)]) if kept else deque()
            if not kept:
                del self.waiting[slot]
        self.done(taken)
        return taken

    def retry(self, batch: Batch) -> None:
        self._queue().appendleft(batch)

    def done(self, items: list[Pending]) -> None:
        self.held -= len(items)
        self.held_bytes -= sum([len(p.value) for p in items])

    @property
    def idle(self) -> bool:
        return self.held == 0 and self.in_flight == 0

    def drop_partitions(self, tps: set[TopicPartition]) -> list[Pending]:
        """Forget the events of revoked partitions (their new owner reads them again)."""
        dropped: list[Pending] = []
        for target in list(self.open):
            kept = [p for p in self.open[target] if p.tp not in tps]
            dropped += [p for p in self.open[target] if p.tp in tps]
            if kept:
                self.open[target] = kept
            else:
                del self.open[target]
                self.opened_at.pop(target, None)
        queues = [self.ready, *self.waiting.values()]
        for queue in queues:
            for batch in queue:
                dropped += [p for p in batch.items if p.tp in tps]
                batch.items = [p for p in batch.items if p.tp not in tps]
        kept_ready = Fifo(b for b in self.ready if b.items)
        self._ready = kept_ready or None
        for slot in list(self.waiting):
            kept_batches = deque(b for b in self.waiting[slot] if b.items)
            if kept_batches:
                self.waiting[slot] = kept_batches
            else:
                del self.waiting[slot]
        self.done(dropped)
        self.partitions = tuple(tp for tp in self.partitions if tp not in tps)
        return dropped


@dataclass
class LaneTable:
    """The lanes of one stage and the bucket table that outlives idle lanes."""

    new_bucket: Callable[[], TokenBucket]
    lanes: dict[str, Lane] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    bucket_partitions: dict[str, set[TopicPartition]] = field(default_factory=dict)

    def bucket(self, key: str) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            # Starts empty: a new owner of the account cannot know what the last one spent.
            bucket = self.buckets[key] = self.new_bucket()
        return bucket

    def reclaim(self, key: str) -> None:
        """An idle lane goes; its bucket stays (with the partitions it was fed from)."""
        lane = self.lanes.pop(key, None)
        if lane is not None:
            self.bucket_partitions.setdefault(lane.account or key, set()).update(lane.partitions)

    def forget_partitions(self, tps: set[TopicPartition]) -> None:
        """Buckets of revoked partitions go: the next owner starts from X's word, not ours."""
        for key, lane in self.lanes.items():
            self.bucket_partitions.setdefault(lane.account or key, set()).update(lane.partitions)
        for key, parts in list(self.bucket_partitions.items()):
            if parts & tps:
                parts -= tps
                self.buckets.pop(key, None)
                if not parts:
                    del self.bucket_partitions[key]

    def expire_buckets(self, older_than_s: float, now: float) -> None:
        """Drop idle buckets after a window: an empty bucket is the safe default again."""
        active = {lane.account or key for key, lane in self.lanes.items()}
        for key in [k for k in self.buckets if k not in active]:
            if now - self.buckets[key].last_used > older_than_s:
                del self.buckets[key]
                self.bucket_partitions.pop(key, None)

    def held_events(self) -> int:
        return sum(lane.held for lane in self.lanes.values())

    def held_bytes(self) -> int:
        return sum(lane.held_bytes for lane in self.lanes.values())
