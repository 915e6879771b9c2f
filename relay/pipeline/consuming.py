"""What both stages share: a consumer group loop with offset tracking, periodic commits,
backpressure by pausing partitions, rebalance handling and graceful shutdown.

A stage implements `make_consumer`, `handle(batch)` and `drain(deadline_s)`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from relay.config import Settings
from relay.kafka import leave_if_still_member, membership_of
from relay.observability.lag import LagSampler
from relay.observability.metrics import Metrics
from relay.observability.startup import StartupTimeline
from relay.pipeline.broker_watch import close_without_broker
from relay.pipeline.membership import (
    EarlyMember,
    StageListener,
    Subscription,
    group_consumer,
    instance_id,
)
from relay.pipeline.offsets import OffsetTracker

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMIT_INTERVAL_S: Final = 0.5
COMMIT_DEBOUNCE_S: Final = 0.05  # a finished batch commits this soon, not at the next tick
POLL_TIMEOUT_MS: Final = 200
MAX_RECORDS_PER_POLL: Final = 5000
CLOSE_WITHOUT_BROKER_S: Final = 2.0  # closing would wait for the broker: don't, for long


async def unless_stopped(work: Coroutine[Any, Any, T], stopped: asyncio.Task[Any]) -> T | None:
    """`work`'s result, or None (`work` cancelled) once `stopped` is done first."""
    task = asyncio.ensure_future(work)
    await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled, not just the work
        return None


async def _started(consumer: AIOKafkaConsumer) -> bool:
    await consumer.start()
    return True


async def _joined(starting: asyncio.Task[None]) -> bool:
    await starting
    return True


class ConsumerStage(abc.ABC):
    stage: str = "stage"

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.tracker = OffsetTracker()
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: set[TopicPartition] = set()
        self.ready = False
        self._failure: BaseException | None = None
        self._paused: set[TopicPartition] = set()
        self._commit_wanted = asyncio.Event()
        # The worker's broker watch: while the broker is gone, commits would only wait.
        self.broker_ok: Callable[[], bool] = lambda: True
        self.timeline = StartupTimeline()  # the worker's, once it runs the stage
        self._early: EarlyMember | None = None

    @abc.abstractmethod
    def make_consumer(self) -> AIOKafkaConsumer: ...

    @abc.abstractmethod
    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None: ...

    @abc.abstractmethod
    async def drain(self, deadline_s: float, partitions: set[TopicPartition] | None = None) -> None:
        """Finish what is in flight (of `partitions`, default all) within the deadline."""

    def new_consumer(self, topics: list[str], group_id: str, **options: Any) -> AIOKafkaConsumer:
        wanted = Subscription(topics, group_id, options)
        return group_consumer(self.settings, self.stage, wanted, StageListener(self))

    def instance_id(self, group_id: str) -> str | None:
        """Static membership: the same id after a restart keeps the member's partitions."""
        return instance_id(self.settings, self.stage)

    def adopt(self, member: EarlyMember) -> None:
        """Run on `member`'s consumer (started by the worker before this stage was built)
        instead of making one."""
        self._early = member
        self.consumer = member.consumer
        self.on_consumer(member.consumer)
        member.listener.attach(self)

    def on_consumer(self, consumer: AIOKafkaConsumer) -> None:  # noqa: B027
        """A consumer made elsewhere is this stage's from now on (stages keep parts of it)."""

    def blocked_reason(self) -> str | None:
        """Why the stage cannot do its work (for readiness), if it cannot."""
        return None

    def commit_soon(self) -> None:
        """Something finished: commit within `COMMIT_DEBOUNCE_S`, not at the next tick."""
        self._commit_wanted.set()

    def fail(self, exc: BaseException) -> None:
        """Stop the stage because of `exc` (it is raised from `run`)."""
        if self._failure is None:
            log.error("%s stage failing: %s", self.stage, exc)
            self._failure = exc

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned |= assigned
        self.ready = True
        self.timeline.mark(f"{self.stage} joined")
        log.info("%s: assigned %d partitions", self.stage, len(assigned))

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            self.metrics.revocations.labels(self.stage).inc()
        await self.drain(self.settings.revoke_drain_s, revoked)
        await self.commit()
        self.tracker.forget(revoked)
        self.assigned -= revoked
        self._paused -= revoked  # a partition assigned again starts unpaused

    async def commit(self) -> None:
        consumer = self.consumer
        if consumer is None or not self.broker_ok():
            return
        offsets = {tp: o for tp, o in self.tracker.to_commit().items() if tp in self.assigned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance in progress: the next tick tries again
            log.warning("%s: commit failed, will retry: %s", self.stage, exc)
            return
        self.tracker.mark_committed(offsets)
        self.metrics.commits.labels(self.stage).inc()

    async def _commit_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel that
            # comes as the event is set, and this loop, cancelled on stop, then runs on
            # forever (the stop waits for it: a stage that never stops).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMIT_INTERVAL_S):
                    await self._commit_wanted.wait()
            if self._commit_wanted.is_set():
                await asyncio.sleep(COMMIT_DEBOUNCE_S)
                self._commit_wanted.clear()
            await self.commit()

    def partitions_to_pause(self, assignment: set[TopicPartition]) -> set[TopicPartition]:
        """Backpressure: all partitions while the stage holds too much (stages refine it)."""
        held = self.tracker.in_flight()
        cap = self.settings.max_buffered_events
        if held >= cap or (self._paused and held >= cap // 2):
            return set(assignment)
        return set()

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        assignment = set(consumer.assignment())
        wanted = self.partitions_to_pause(assignment) & assignment
        if wanted == self._paused:
            return
        if resume := (self._paused - wanted) & assignment:
            consumer.resume(*resume)
        if pause := wanted - self._paused:
            consumer.pause(*pause)
        self._paused = wanted
        self.metrics.paused_partitions.set(len(wanted))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain within the grace period, commit, close."""
        early = self._early
        if early is not None:
            early.owned = True
        consumer = self.consumer = early.consumer if early else self.make_consumer()
        stopped = asyncio.create_task(stop.wait())
        # aiokafka's start, and getmany during a rebalance, wait for the broker whatever the
        # timeout says (forever, if it is gone meanwhile): `stop` ends those waits.
        starting = _joined(early.starting) if early else _started(consumer)
        if not await unless_stopped(starting, stopped):
            stopped.cancel()
            self.consumer = None
            await close_without_broker(consumer.stop(), CLOSE_WITHOUT_BROKER_S)
            return
        self.timeline.mark(f"{self.stage} consumer started")
        committer = asyncio.create_task(self._commit_loop())
        lag = LagSampler(self.stage, consumer, self.metrics, self.tracker.committed)
        sampler = asyncio.create_task(lag.run())
        try:
            while not stop.is_set() and self._failure is None:
                batch = await unless_stopped(
                    consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS_PER_POLL),
                    stopped,
                )
                if batch:
                    self.timeline.mark(f"{self.stage} first records")
                    await self.handle(batch)
                self._apply_backpressure(consumer)
            started = time.monotonic()
            await self.drain(self.settings.shutdown_grace_s)
            log.info("%s: drained in %.1fs", self.stage, time.monotonic() - started)
        finally:
            for task in (committer, sampler, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.broker_ok():
                await lag.close()
            else:
                await close_without_broker(lag.close(), CLOSE_WITHOUT_BROKER_S)
            await self.commit()  # only finished records: safe after a failure too
            self.consumer = None
            if self.broker_ok():
                membership = membership_of(consumer)
                await consumer.stop()
                await leave_if_still_member(self.settings, membership)
            else:
                await close_without_broker(consumer.stop(), CLOSE_WITHOUT_BROKER_S)
        if self._failure is not None:
            raise self._failure
