"""A stage's background loops end when cancelled, even as they are woken: Python 3.11's
`asyncio.wait_for` drops a cancel that comes as its awaitable completes, and a stage whose
commit loop ran on would never finish stopping."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import load_settings
from relay.observability.metrics import Metrics
from relay.pipeline.consuming import ConsumerStage


class _Idle(ConsumerStage):
    def make_consumer(self) -> AIOKafkaConsumer:
        raise NotImplementedError

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        raise NotImplementedError

    async def drain(self, deadline_s: float, partitions: set[TopicPartition] | None = None) -> None:
        return None


async def test_the_commit_loop_ends_when_cancelled_as_a_commit_is_wanted() -> None:
    stage = _Idle(load_settings({}), Metrics())
    loop = asyncio.create_task(stage._commit_loop())
    await asyncio.sleep(0.01)  # waiting for the next commit
    stage.commit_soon()  # wakes it ...
    loop.cancel()  # ... in the same turn as the stop's cancel
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(loop), 10)
    with contextlib.suppress(asyncio.CancelledError):
        await loop
