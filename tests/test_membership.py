"""A stage's early group member: rebalance callbacks that come before the stage is built wait
for it, and reach nobody once the stage will not come."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from relay.pipeline.membership import StageListener

TP = TopicPartition("t.outbound", 0)


class Target:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.calls.append("revoked")

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.calls.append("assigned")


async def test_an_assignment_before_the_stage_exists_waits_for_it() -> None:
    listener = StageListener()
    assigning = asyncio.create_task(listener.on_partitions_assigned({TP}))
    await asyncio.sleep(0)
    assert not assigning.done()
    target = Target()
    listener.attach(target)
    await asyncio.wait_for(assigning, 5)
    assert target.calls == ["assigned"]
    await listener.on_partitions_revoked({TP})
    assert target.calls[-1] == "revoked"


async def test_a_stage_that_will_not_come_releases_the_wait() -> None:
    listener = StageListener()
    assigning = asyncio.create_task(listener.on_partitions_assigned({TP}))
    await asyncio.sleep(0)
    listener.attach(None)
    await asyncio.wait_for(assigning, 5)
    await listener.on_partitions_revoked({TP})  # nothing to drain: no error
