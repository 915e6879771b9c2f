"""Consumer lag per assigned partition, sampled from the consumer itself.

    lag         = high-water mark - the group's committed offset (what KEDA scales on)
    uncommitted = position - committed offset (read, not committed: replayed after a crash)

The high-water mark comes from the fetch responses (`consumer.highwater(tp)`), not from
ListOffsets: the embedded broker's `end_offsets()` lags behind it, and a fetch costs nothing
extra. A partition not fetched yet has no high-water mark and is skipped until it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final, Protocol

from aiokafka import TopicPartition

from relay.observability.metrics import Metrics

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S: Final = 1.0


class LagSource(Protocol):
    """What the sampler needs of an AIOKafkaConsumer."""

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, tp: TopicPartition) -> int | None: ...

    async def position(self, tp: TopicPartition) -> int: ...

    async def committed(self, tp: TopicPartition) -> int | None: ...

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...


class LagSampler:
    """Sets `relay_consumer_lag_records` and `..._uncommitted_records` for one stage."""

    def __init__(
        self,
        stage: str,
        consumer: LagSource,
        metrics: Metrics,
        committed: Callable[[TopicPartition], int | None],
    ):
        self.stage = stage
        self.consumer = consumer
        self.metrics = metrics
        # What this worker committed; before its first commit the group's offset is asked,
        # and a group that never committed starts (auto_offset_reset) at the log's start.
        self._local_committed = committed
        self._group_committed: dict[TopicPartition, int] = {}
        self._sampled: set[TopicPartition] = set()

    async def sample(self) -> None:
        consumer = self.consumer
        assigned = set(consumer.assignment())
        for tp in self._sampled - assigned:
            self.forget(tp)
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            base = await self._committed(tp)
            position = await consumer.position(tp)
            self.metrics.set_lag(
                self.stage, tp.topic, tp.partition, highwater - base, position - base
            )
            self._sampled.add(tp)

    async def _committed(self, tp: TopicPartition) -> int:
        local = self._local_committed(tp)
        if local is not None:
            return local
        if tp not in self._group_committed:
            group = await self.consumer.committed(tp)
            if group is None:
                group = (await self.consumer.beginning_offsets([tp]))[tp]
            self._group_committed[tp] = group
        return self._group_committed[tp]

    def forget(self, tp: TopicPartition) -> None:
        self._sampled.discard(tp)
        self._group_committed.pop(tp, None)
        self.metrics.forget_partition(self.stage, tp.topic, tp.partition)

    async def run(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        """Sample every `interval_s` until cancelled; a failed sample is tried again."""
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a rebalance in flight; the next round retries
                log.debug("%s: lag sample failed: %s", self.stage, exc)
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            for tp in list(self._sampled):
                self.forget(tp)
