"""A newly assigned partition: nothing of it is handled before the delivered ledger knows
it (aiokafka fetches a partition before its assignment callback has finished)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

import pytest

from relay.config import default_mapping_path, load_mapping
from relay.kafka import BatchProducer, ensure_topics
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.deliver import DeliverStage
from relay.pipeline.ledger import DeliveredLedger, RebuildStats
from relay.pipeline.membership import StageListener, group_consumer, subscription
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from relay.tools.produce import generate_web, usable_pixels
from relay.xads.client import XAdsClient
from relay.xads.errors import RateLimited, RateLimitInfo
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, wait_for


@dataclass
class HeldRebuild:
    rebuilding: asyncio.Event  # a ledger rebuild started
    release: asyncio.Event  # set: the rebuilds go on


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldRebuild:
    """Ledger rebuilds wait until `release` is set (a long rebuild, at will)."""
    state = HeldRebuild(asyncio.Event(), asyncio.Event())
    rebuild = DeliveredLedger.rebuild

    async def held_rebuild(self: DeliveredLedger, partitions: set[int]) -> RebuildStats:
        state.rebuilding.set()
        await state.release.wait()
        return await rebuild(self, partitions)

    monkeypatch.setattr(DeliveredLedger, "rebuild", held_rebuild)
    return state


async def test_records_of_a_partition_wait_for_its_ledger_rebuild(
    kafka_bootstrap: str,
    topic_prefix: str,
    sandbox: SandboxServer,
    held: HeldRebuild,
) -> None:
    rebuilding, release = held.rebuilding, held.release
    count = 300
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url)
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    values = [s.value for s in generate_web(count, pixels, seed=41)]
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), values)
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    metrics = worker.metrics

    def deliver() -> DeliverStage | None:
        return next((s for s in worker.stages if isinstance(s, DeliverStage)), None)

    def waiting_for_the_ledger() -> bool:
        stage = deliver()
        consumer = stage.consumer if stage is not None else None
        if consumer is None or not rebuilding.is_set():
            return False
        assigned = consumer.assignment()
        return bool(assigned) and set(consumer.paused()) >= assigned

    try:
        # Either the stage read records of partitions still being rebuilt (the fault), or
        # it holds them paused until the rebuild is over.
        await wait_for(
            lambda: (
                task.done()
                or metrics.total("relay_events_consumed", stage="deliver") > 0
                or (metrics.total("relay_events_ingested") >= count and waiting_for_the_ledger())
            ),
            60,
            "the deliver stage reading, or waiting for the ledger",
        )
        assert metrics.total("relay_events_consumed", stage="deliver") == 0
        release.set()
        await wait_for(
            lambda: task.done() or metrics.total("relay_events_delivered") >= count,
            60,
            "every event, once the ledger is rebuilt",
        )
    finally:
        release.set()
        stop.set()
        await task
    assert metrics.total("relay_events_delivered") == count


async def test_a_reset_x_announced_holds_the_account_after_its_bucket_went_with_a_revoke(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # An eager rebalance revokes every partition and may give the same ones back at once:
    # the bucket went with the revoke, X's word on the account's reset did not.
    settings = make_settings(kafka_bootstrap, topic_prefix, "http://127.0.0.1:1")
    async with XAdsClient(settings.api_base_url, settings.credentials) as client:
        stage = DeliverStage(settings, cast(BatchProducer, None), client, Metrics())
        routed = outbound.Routed("web", "acct1", "pixel1", "web pixel1 c1", b"{}")
        reset = time.time() + 30
        spent = RateLimited("spent", status=429, rate_limit=RateLimitInfo(0, 0, reset, None))
        stage._remember_reset("acct1", spent)
        stage.table.forget_partitions(set())  # the revoke dropped the account's bucket
        stage.table.buckets.clear()
        lane = stage._lane(routed)
        try:
            assert lane.bucket.blocked_for() > 29
            assert (
                stage._lane(outbound.Routed("web", "acct2", "p2", "k", b"{}")).bucket.blocked_for()
                == 0
            )
        finally:
            stage._close_lane("acct1")
            stage._close_lane("acct2")


async def test_a_rebuild_longer_than_the_session_timeout_keeps_the_member_in_its_group(
    kafka_bootstrap: str,
    topic_prefix: str,
    sandbox: SandboxServer,
    held: HeldRebuild,
) -> None:
    # aiokafka sends no heartbeat while the group's assignment callback runs: a rebuild
    # there longer than the session timeout got the member evicted by the broker (noticed
    # once another member heartbeats), and the whole group rebalanced.
    rebuilding, release = held.rebuilding, held.release
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url)
    topics = [*settings.inputs, settings.outbound_topic, settings.delayed_topic]
    await ensure_topics(kafka_bootstrap, topics, partitions=4)
    nobody = StageListener()
    nobody.attach(None)
    other = group_consumer(settings, "deliver", subscription(settings, "deliver"), nobody)
    await other.start()  # the other member, heartbeating all along
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: task.done() or rebuilding.is_set(), 60, "the worker's rebuild")
        everything = 2 * 4  # partitions of the outbound and the delayed topic
        deadline = asyncio.get_running_loop().time() + 60
        while len(other.assignment()) in (0, everything):  # until the group is split
            assert asyncio.get_running_loop().time() < deadline, "the group never split"
            await other.getmany(timeout_ms=200)
        shared = other.assignment()
        # The other member polls (a member that stops polling leaves the group too) for
        # three session timeouts: an evicted worker's partitions would come to it.
        session_s = (settings.kafka_session_timeout_ms or 10_000) / 1000
        until = asyncio.get_running_loop().time() + 3 * session_s
        while asyncio.get_running_loop().time() < until:
            await other.getmany(timeout_ms=200)
        assert other.assignment() == shared
        release.set()
        await wait_for(
            lambda: task.done() or "ledger rebuilt" in worker.timeline.steps,
            60,
            "the rebuild's end",
        )
        assert not task.done()
        assert worker.metrics.total("relay_partition_revocations") == 0
    finally:
        release.set()
        stop.set()
        await task
        await other.stop()
