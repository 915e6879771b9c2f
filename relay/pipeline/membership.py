"""The consumer group membership of each stage: what it subscribes to, and a member that
starts joining before its stage is built.

A group join is the longest wait of a start (the embedded broker holds each JoinGroup for
1 s, a real Kafka for `group.initial.rebalance.delay.ms`); the worker starts both stages'
joins first and builds the rest (the HTTP clients, the ledger, the heavier imports) while
the broker holds them. Partitions assigned before the stage is attached wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from relay.config import Settings
from relay.kafka import group_options, make_consumer
from relay.pipeline.parking import DELIVER_ASSIGNORS


class RebalanceTarget(Protocol):
    async def on_revoked(self, revoked: set[TopicPartition]) -> None: ...

    # No await here: aiokafka sends no heartbeat until the group's callback returns, so a
    # stage's slow work for new partitions runs beside it (the deliver stage's ledger).
    def on_assigned(self, assigned: set[TopicPartition]) -> None: ...


@dataclass(frozen=True)
class Subscription:
    topics: list[str]
    group_id: str
    options: dict[str, Any] = field(default_factory=dict)


# What the deliver consumer fetches ahead is memory too (each partition's answer is kept
# until read, paused partitions' included): 1 MiB is 2,000 outbound records, plenty a poll.
DELIVER_FETCH: Final[dict[str, Any]] = {
    "max_partition_fetch_bytes": 1024 * 1024,
    "fetch_max_bytes": 8 * 1024 * 1024,
}


def subscription(settings: Settings, stage: str, *, parked: bool = True) -> Subscription:
    """What `stage` (ingest | deliver) consumes; `parked`: deliver reads the delayed topic
    too (partition p of both on one member: an account's parked records come back to its
    owner)."""
    if stage == "ingest":
        return Subscription(list(settings.inputs), settings.ingest_group)
    if not parked:
        return Subscription([settings.outbound_topic], settings.deliver_group, dict(DELIVER_FETCH))
    return Subscription(
        [settings.outbound_topic, settings.delayed_topic],
        settings.deliver_group,
        {"partition_assignment_strategy": DELIVER_ASSIGNORS, **DELIVER_FETCH},
    )


def instance_id(settings: Settings, stage: str) -> str | None:
    """Static membership: the same id after a restart keeps the member's partitions."""
    base = settings.kafka_group_instance_id
    return f"{base}-{stage}" if base else None


def group_consumer(
    settings: Settings, stage: str, wanted: Subscription, listener: ConsumerRebalanceListener
) -> AIOKafkaConsumer:
    chosen: dict[str, Any] = {  # the subscription's options win
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 32 * 1024 * 1024,
        **group_options(settings.kafka_session_timeout_ms, settings.kafka_fetch_max_wait_ms),
        **wanted.options,
    }
    consumer = make_consumer(
        settings,
        group_id=wanted.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_instance_id=instance_id(settings, stage),
        **chosen,
    )
    consumer.subscribe(wanted.topics, listener=listener)
    return consumer


class StageListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards the group's rebalance callbacks to a stage, once it is attached."""

    def __init__(self, target: RebalanceTarget | None = None):
        self._target = target
        self._attached = asyncio.Event()
        if target is not None:
            self._attached.set()

    def attach(self, target: RebalanceTarget | None) -> None:
        """From now on callbacks go to `target` (None: to nobody, the stage will not come)."""
        self._target = target
        self._attached.set()

    async def _wait(self) -> RebalanceTarget | None:
        await self._attached.wait()
        return self._target

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Revoked before the stage existed: nothing was read, nothing to drain.
        if self._target is not None:
            await self._target.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        target = await self._wait()
        if target is not None:
            target.on_assigned(set(assigned))


@dataclass
class EarlyMember:
    """A stage's consumer, started (joining its group) before the stage is built."""

    stage: str
    consumer: AIOKafkaConsumer
    listener: StageListener
    starting: asyncio.Task[None]
    owned: bool = False  # a running stage closes it from now on

    async def abandon(self, stop: Callable[[Awaitable[None]], Awaitable[None]]) -> None:
        """The stage was never built: end the join and close the consumer through `stop`
        (which bounds the wait when the broker is gone)."""
        self.listener.attach(None)
        self.starting.cancel()
        await asyncio.wait([self.starting])  # its end, without raising what ended it
        if not self.starting.cancelled():
            self.starting.exception()  # retrieved: the stage's failure is reported elsewhere
        await stop(self.consumer.stop())


def start_early(settings: Settings, stage: str, *, parked: bool = True) -> EarlyMember:
    listener = StageListener()
    consumer = group_consumer(
        settings, stage, subscription(settings, stage, parked=parked), listener
    )
    starting = asyncio.create_task(consumer.start(), name=f"{stage}-join")
    return EarlyMember(stage, consumer, listener, starting)
