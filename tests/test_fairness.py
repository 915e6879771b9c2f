"""A hot account with a spent budget does not hold back a cold one on its partition: its
overflow is parked on `<prefix>.delayed` and the partition's committed prefix moves on."""

from __future__ import annotations

import asyncio
from collections import Counter

from relay.formats.base import OutboundEvent
from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_producer
from relay.pipeline import outbound
from relay.pipeline.parking import not_before
from relay.pipeline.worker import Worker
from relay.sandbox.config import load_sandbox_config
from relay.sandbox.server import SandboxServer
from tests.conftest import make_settings
from tests.kafka_helpers import committed_and_end, read_all, wait_for


def web_record(budget_key: str, pixel: str, event_id: str, number: int) -> bytes:
    payload = {
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "event_id": event_id,
        "identifiers": [{"twclid": f"click{number}"}],
        "conversion_id": f"{budget_key}-{number}",
    }
    return outbound.encode(OutboundEvent("web", budget_key, pixel, payload))


async def test_a_hot_account_parks_its_overflow_and_the_cold_one_flows(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # 100 events per minute per account, in the sandbox and the relay: the hot backlog
    # cannot go for many minutes.
    env = {"RELAY_ACCOUNT_LIMIT": "100", "RELAY_ACCOUNT_WINDOW_S": "60"}
    async with SandboxServer(load_sandbox_config(None, env)) as sandbox:
        settings = make_settings(
            kafka_bootstrap, topic_prefix, sandbox.url, RELAY_MAX_LANE_EVENTS=300, **env
        )
        hot = [web_record("hot", "o8z6j", "o87ne", i) for i in range(3000)]
        cold = [web_record("cold", "p1a2b", "p9x01", i) for i in range(20)]
        # Both accounts on partition 0, the cold events behind the whole hot backlog.
        await ensure_topics(kafka_bootstrap, [settings.outbound_topic])
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        try:
            await BatchProducer(producer).send_and_wait(
                OutRecord(settings.outbound_topic, v, key=None, partition=0) for v in hot + cold
            )
        finally:
            await producer.stop()
        worker = Worker(settings, serve_http=False, stage="deliver")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            delivered = worker.metrics.delivered
            await wait_for(
                lambda: delivered.labels("web")._value.get() >= 100 + len(cold),
                60,
                "the cold account's events",
            )
            parked = worker.metrics.total("relay_events_parked")
            assert parked >= len(hot) - 100 - settings.max_lane_events

            async def prefix_moved() -> bool:
                offsets = await committed_and_end(
                    kafka_bootstrap, settings.deliver_group, settings.outbound_topic
                )
                return (offsets.get(0, (0, 0))[0] or 0) > len(hot) // 2

            deadline = asyncio.get_running_loop().time() + 30
            while not await prefix_moved():
                assert asyncio.get_running_loop().time() < deadline, "the prefix is stuck"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
        assert worker.metrics.total("relay_events_dead_lettered") == 0
        rejected = worker.metrics.registry.get_sample_value(
            "relay_api_requests_total", {"endpoint": "measurement/conversions", "status": "429"}
        )
        assert not rejected, "the hot account went over X's budget"


async def test_parked_overflow_comes_back_when_the_budget_has_room_one_park_after_another(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # 100 events a minute: each park of the hot account's overflow is due after the one
    # before it has had its share of the budget, not all at the next window.
    env = {"RELAY_ACCOUNT_LIMIT": "100", "RELAY_ACCOUNT_WINDOW_S": "60"}
    rate = 100 / 60
    async with SandboxServer(load_sandbox_config(None, env)) as sandbox:
        settings = make_settings(
            kafka_bootstrap, topic_prefix, sandbox.url, RELAY_MAX_LANE_EVENTS=300, **env
        )
        await ensure_topics(kafka_bootstrap, [settings.outbound_topic])
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        worker = Worker(settings, serve_http=False, stage="deliver")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            for wave in range(2):
                values = [web_record("hot", "o8z6j", "o87ne", wave * 600 + i) for i in range(600)]
                await BatchProducer(producer).send_and_wait(
                    OutRecord(settings.outbound_topic, v, key=None, partition=0) for v in values
                )
                floor = 300 * (wave + 1)

                def parked_past(floor: int = floor) -> bool:
                    return worker.metrics.total("relay_events_parked") >= floor

                await wait_for(parked_past, 60, f"the overflow of wave {wave}")
        finally:
            stop.set()
            await task
            await producer.stop()
        parked = worker.metrics.total("relay_events_parked")
        records = await read_all(kafka_bootstrap, settings.delayed_topic, int(parked))
    parks = Counter(float(not_before(r) or 0) for r in records)  # due time -> events
    assert len(parks) >= 2, "two waves, two parks"
    (first, count), (second, _) = sorted(parks.items())[:2]
    assert second >= first + 0.9 * count / rate
