"""The web path end to end: the real broker, the relay, the sandbox over HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from relay.config import default_mapping_path, load_mapping
from relay.kafka import ensure_topics, make_producer
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.deliver import DeliverStage
from relay.pipeline.ledger import DIGEST_BYTES, decode_entry
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from relay.tools.produce import generate_web, usable_pixels
from tests.conftest import make_settings
from tests.kafka_helpers import (
    committed_and_end,
    produce_values,
    read_all,
    read_outbound,
    wait_for,
)

VALID = 300


async def journal(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_sandbox/journal") as r:
        body: dict[str, Any] = await r.json()
        entries: list[dict[str, Any]] = body["conversions"]
        return entries


def web_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "pixel_id": "o8z6j",
        "event_id": "o87ne",
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "conversion_id": "order-1",
        "email": "  Test-Email@Test.com ",
    }
    event.update(fields)
    return event


def malformed_records() -> dict[str, tuple[bytes, str, str | None]]:
    """name -> (record value, expected error class, expected field)."""
    return {
        "not json": (b"{oops", "invalid_json", None),
        "not utf-8": (b'{"pixel_id": "\xff\xfe"}', "invalid_encoding", None),
        "not an object": (b"[1, 2, 3]", "invalid_event", None),
        "wrong type": (
            orjson.dumps(web_event(number_items="many")),
            "invalid_event",
            "number_items",
        ),
        "nested garbage": (
            orjson.dumps(web_event(email={"a": [{"b": [None, {"c": 1}]}]})),
            "invalid_event",
            "email",
        ),
        "no identifier": (
            orjson.dumps(web_event(email=None, ip_address="192.0.2.1")),
            "invalid_event",
            "identifiers",
        ),
        "too large": (orjson.dumps(web_event(description="x" * 5000)), "too_large", None),
        "unknown pixel": (orjson.dumps(web_event(pixel_id="zzzzz")), "unknown_pixel", "pixel_id"),
    }


async def run_worker_until(worker: Worker, condition: Any, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: task.done() or condition(worker.metrics), 60, what)
    finally:
        stop.set()
        await task


async def test_web_events_flow_to_x_and_bad_ones_to_the_dlq(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url, RELAY_MAX_EVENT_BYTES=4096)
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    valid = [s.value for s in generate_web(VALID, pixels, seed=7)]
    known = orjson.dumps(web_event())
    opted_out = orjson.dumps(web_event(consent={"opt_out": True}, conversion_id="order-2"))
    bad = malformed_records()
    values = [known, opted_out, *[v for v, _, _ in bad.values()], *valid]
    input_topic = next(iter(settings.inputs))
    await produce_values(kafka_bootstrap, input_topic, values)

    worker = Worker(settings, serve_http=False)

    def settled(m: Metrics) -> bool:
        total = (
            m.total("relay_events_delivered")
            + m.total("relay_events_dead_lettered")
            + m.total("relay_events_dropped")
        )
        return total >= len(values)

    await run_worker_until(worker, settled, "every event to settle")
    metrics = worker.metrics
    assert metrics.total("relay_events_delivered") == VALID + 1
    assert metrics.total("relay_events_dropped") == 1
    assert metrics.total("relay_events_dead_lettered") == len(bad)

    # X received every valid event once, hashed as X's vector says, with no raw PII.
    entries = await journal(sandbox.url)
    assert len(entries) == VALID + 1
    assert not any(e.get("duplicate") for e in entries)
    ours = [e["conversion"] for e in entries if e["conversion"].get("conversion_id") == "order-1"]
    assert len(ours) == 1
    assert {"hashed_email": "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"} in (
        ours[0]["identifiers"]
    )
    assert "order-2" not in {e["conversion"].get("conversion_id") for e in entries}
    records, events = await read_outbound(kafka_bootstrap, settings.outbound_topic, VALID + 1)
    assert len(events) == VALID + 1
    assert not any(b"@" in r.value for r in records), "raw email on the outbound topic"
    # An account's web events of one read travel as one record (a bundle), at most 100.
    assert len(records) < len(events) // 10
    assert all(len(outbound.decode_all(r.value)) <= 100 for r in records)

    # Each malformed record cost exactly one dead letter, with the contract's headers.
    dead = await read_all(kafka_bootstrap, settings.dlq_topic, len(bad))
    assert len(dead) == len(bad)
    by_value = {r.value: dict((k, v.decode()) for k, v in r.headers) for r in dead}
    for name, (value, error_class, field) in bad.items():
        headers = by_value[value]
        assert headers["relay.error.stage"] == "ingest", name
        assert headers["relay.error.class"] == error_class, name
        assert headers["relay.error.message"], name
        assert headers.get("relay.error.field") == field, name
        assert headers["relay.origin.topic"] == input_topic, name
        assert int(headers["relay.origin.offset"]) >= 0, name
        assert "test-email" not in headers["relay.error.message"].lower(), name

    # Offsets: both groups committed everything they finished.
    for group, topic in (
        (settings.ingest_group, input_topic),
        (settings.deliver_group, settings.outbound_topic),
    ):
        offsets = await committed_and_end(kafka_bootstrap, group, topic)
        assert offsets, topic
        for partition, (committed, end) in offsets.items():
            assert (committed or 0) == end, (group, partition, committed, end)


async def test_a_restart_delivers_nothing_twice(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url)
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    await produce_values(
        kafka_bootstrap,
        next(iter(settings.inputs)),
        [s.value for s in generate_web(50, pixels, seed=3)],
    )
    first = Worker(settings, serve_http=False)
    await run_worker_until(first, lambda m: m.total("relay_events_delivered") >= 50, "delivery")
    second = Worker(settings, serve_http=False)
    more = [s.value for s in generate_web(10, pixels, seed=4)]
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), more)
    await run_worker_until(second, lambda m: m.total("relay_events_delivered") >= 10, "delivery")
    assert second.metrics.total("relay_events_delivered") == 10
    assert len(await journal(sandbox.url)) == 60


async def test_a_batch_x_rejects_is_split_so_only_the_bad_event_is_dead_lettered(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The relay's mapping does not list the pixel's event ids, so it cannot know that
    # "zzzzz" is not one of them; X (the sandbox) does and rejects the whole batch.
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[[pixels]]\nid = "o8z6j"\naccount_id = "18ce552mlaq"\n')
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_CONFIG=str(mapping),
        RELAY_LINGER_S="1",
        RELAY_CONSUMER_KEY="relay-demo-consumer-key",
        RELAY_CONSUMER_SECRET="relay-demo-consumer-secret",
        RELAY_ACCESS_TOKEN="1000000001-relaydemoaccesstoken",
        RELAY_ACCESS_TOKEN_SECRET="relay-demo-access-token-secret",
    )
    good = [orjson.dumps(web_event(conversion_id=f"good-{i}")) for i in range(20)]
    bad = orjson.dumps(web_event(conversion_id="bad-1", event_id="zzzzz"))
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), [*good[:7], bad, *good[7:]])
    worker = Worker(settings, serve_http=False)
    await run_worker_until(
        worker,
        lambda m: m.total("relay_events_delivered") + m.total("relay_events_dead_lettered") >= 21,
        "the batch to be split",
    )
    assert worker.metrics.total("relay_events_delivered") == 20
    dead = await read_all(kafka_bootstrap, settings.dlq_topic, 1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["relay.error.stage"] == "deliver"
    assert headers["relay.error.class"] == "rejected"
    assert headers["relay.error.http_status"] == "400"
    assert headers["relay.error.api_code"] == "INVALID_PARAMETER"
    assert outbound.decode(dead[0].value).payload_dict()["conversion_id"] == "bad-1"
    assert headers["relay.origin.topic"] == settings.outbound_topic


async def test_wrong_credentials_hold_delivery_without_dead_letters(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_CONSUMER_KEY="relay-demo-consumer-key",
        RELAY_CONSUMER_SECRET="not-the-secret",
        RELAY_ACCESS_TOKEN="1000000001-relaydemoaccesstoken",
        RELAY_ACCESS_TOKEN_SECRET="relay-demo-access-token-secret",
        RELAY_SHUTDOWN_GRACE_S="1",
    )
    await produce_values(
        kafka_bootstrap,
        next(iter(settings.inputs)),
        [orjson.dumps(web_event(conversion_id=f"c{i}")) for i in range(30)],
    )
    worker = Worker(settings, serve_http=False)
    seen: list[tuple[bool, str]] = []

    def rejected(m: Metrics) -> bool:
        seen.append(worker.readiness())
        return m.total("relay_api_requests") >= 1 and "401" in seen[-1][1]

    await run_worker_until(worker, rejected, "the 401 to be seen")
    assert seen[-1][0] is False
    assert worker.metrics.total("relay_events_delivered") == 0
    assert worker.metrics.total("relay_events_dead_lettered") == 0
    assert worker.metrics.total("relay_api_requests") == 1, "one probe, not a retry per event"
    offsets = await committed_and_end(
        kafka_bootstrap, settings.deliver_group, settings.outbound_topic
    )
    assert all((committed or 0) == 0 for committed, _ in offsets.values())


async def test_a_second_worker_joining_takes_partitions_without_losing_events(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    count = 6000
    # 300 events/s per account: delivery lasts seconds, so the rebalance lands mid-stream.
    settings = make_settings(
        kafka_bootstrap, topic_prefix, sandbox.url, RELAY_ACCOUNT_LIMIT=270_000
    )
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    await produce_values(
        kafka_bootstrap,
        next(iter(settings.inputs)),
        [s.value for s in generate_web(count, pixels, seed=31)],
    )
    first, second = Worker(settings, serve_http=False), Worker(settings, serve_http=False)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    try:
        await wait_for(lambda: first.metrics.total("relay_events_delivered") > 0, 30, "delivery")
        second_task = asyncio.create_task(second.run(stop_second))
        try:
            # The rebalance revokes partitions from the first worker while it delivers.
            await wait_for(
                lambda: any(s.assigned for s in second.stages if s.stage == "deliver"),
                30,
                "the rebalance",
            )

            def unique() -> float:
                return sum(w.metrics.total("relay_events_delivered") for w in (first, second))

            await wait_for(lambda: unique() >= count, 60, "every event")
        finally:
            stop_second.set()
            await second_task
    finally:
        stop_first.set()
        await first_task
    entries = await journal(sandbox.url)
    ids = {e["conversion"]["conversion_id"] for e in entries}
    assert len(ids) == count  # every event arrived; any replay is an X duplicate, not a loss
    revoked = first.metrics.registry.get_sample_value(
        "relay_partition_revocations_total", {"stage": "deliver"}
    )
    assert revoked and revoked >= 1, "no rebalance happened while the first worker delivered"
    assert first.metrics.total("relay_events_dead_lettered") == 0
    assert second.metrics.total("relay_events_dead_lettered") == 0


async def test_latency_counts_from_the_input_record_and_identifiers_from_the_routing_line(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url)
    input_topic = next(iter(settings.inputs))
    await ensure_topics(kafka_bootstrap, [input_topic])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:  # appended "two minutes ago": the latency must count from the input record
        old_ms = int(time.time() * 1000) - 120_000
        event = web_event(ip_address="192.0.2.1", user_agent="UA/1")
        await producer.send_and_wait(input_topic, orjson.dumps(event), timestamp_ms=old_ms)
    finally:
        await producer.stop()
    worker = Worker(settings, serve_http=False)
    await run_worker_until(worker, lambda m: m.total("relay_events_delivered") >= 1, "delivery")
    registry = worker.metrics.registry
    latency = registry.get_sample_value("relay_delivery_latency_seconds_sum", {"kind": "web"})
    assert latency is not None and 120 <= latency < 600
    labels = {"kind": "web", "identifiers": "email+ip_ua"}
    assert registry.get_sample_value("relay_delivered_identifiers_total", labels) == 1
    (record,) = await read_all(kafka_bootstrap, settings.outbound_topic, 1)
    routed = outbound.decode(record.value)
    assert (routed.origin_ms, routed.identifiers) == (old_ms, "email+ip_ua")
    assert not record.headers  # the routing line carries what a header did


async def test_a_revoke_writes_the_delivered_ledger_before_the_partitions_go(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    # No timed ledger writes: only a revoke can put the delivered keys on the topic, where
    # the partitions' next owner (this worker again after an eager rebalance, or another)
    # reads them; keys left in memory would be sent again by that owner.
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_LEDGER_FLUSH_INTERVAL_S=3600,
        RELAY_LEDGER_FLUSH_KEYS=1_000_000,
        RELAY_SHUTDOWN_GRACE_S=1,
    )
    count = 40
    await produce_values(
        kafka_bootstrap,
        next(iter(settings.inputs)),
        [orjson.dumps(web_event(conversion_id=f"r{i}")) for i in range(count)],
    )
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(
            lambda: task.done() or worker.metrics.total("relay_events_delivered") >= count,
            60,
            "the events delivered",
        )
        (deliver,) = [s for s in worker.stages if isinstance(s, DeliverStage)]
        assert deliver.ledger is not None
        await deliver.on_revoked(set(deliver.assigned))
        records = await read_all(kafka_bootstrap, settings.delivered_topic, 1)
        keys = sum(len(decode_entry(r.value) or b"") // DIGEST_BYTES for r in records)
        assert keys == count
    finally:
        stop.set()
        await task
