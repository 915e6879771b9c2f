"""A real Prometheus scrapes a real worker through a demo-sized run with X's faults (429s, a
400 that splits batches, invalid records, then 401s), and every dashboard query and alert
expression is evaluated through Prometheus's HTTP API.

The counts on the panels must equal what the run did (the DLQ topic, the sandbox's own
count of 429s and 400s), which holds only if every series exists at 0 before its first
event. The run spreads over more accounts than the top-N account metrics show, and the
worker's /metrics must carry no raw identifier and no unbounded label.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from relay.broker import free_port
from relay.config import load_mapping
from relay.kafka import ensure_topics
from relay.pipeline.worker import Worker
from relay.sandbox.config import load_sandbox_config
from relay.sandbox.server import SandboxServer
from relay.tools.produce import ProduceSummary, generate_web, usable_pixels
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, read_all, wait_for
from tests.prometheus_helpers import Prometheus, finite_values, prometheus

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana" / "conversion-relay.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
JOB = "conversion-relay"
ACCOUNTS = 24
TOP_ACCOUNTS = 5
BAD_EVENT_ID = "zzzzz"  # valid for the relay, unknown to X: a 400 on its batch
# What this run must set off, and what must stay silent.
EXPECTED_ALERTS = {
    "RelayRateLimited",
    "RelayEventsRejected",
    "RelayDeadLettersHigh",
    "RelayCredentialsRejected",
    "RelayTargetForbidden",
}
FORBIDDEN = 5  # events of an account the token may not use: X answers 403


def many_accounts_config(path: Path, *, relay_side: bool = False) -> Path:
    """The sandbox's accounts and pixels; the relay's copy lists no event ids for px000, so
    that only X (the sandbox) catches an unknown event id there."""
    lines = [
        "[credentials]",
        'consumer_key = "relay-demo-consumer-key"',
        'consumer_secret = "relay-demo-consumer-secret"',
        'access_token = "1000000001-relaydemoaccesstoken"',
        'access_token_secret = "relay-demo-access-token-secret"',
        "accounts = [" + ", ".join(f'"acct{i:03d}"' for i in range(ACCOUNTS)) + "]",
    ]
    # An account the token's user may not manage (not in credentials.accounts).
    lines += ["[[accounts]]", 'id = "acctx"', "[[pixels]]", 'id = "pxx"', 'account_id = "acctx"']
    lines += ['event_ids = ["evx"]']
    for i in range(ACCOUNTS):
        lines += [
            "[[accounts]]",
            f'id = "acct{i:03d}"',
            "[[pixels]]",
            f'id = "px{i:03d}"',
            f'account_id = "acct{i:03d}"',
        ]
        if not (relay_side and i == 0):
            lines.append(f'event_ids = ["ev{i:03d}"]')
    path.write_text("\n".join(lines) + "\n")
    return path


def mixed_identifiers(values: list[bytes]) -> list[bytes]:
    """Some events with a click id, some without a phone: several identifier sets."""
    out = []
    for i, value in enumerate(values):
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            out.append(value)
            continue
        if isinstance(event, dict) and "pixel_id" in event and "conversion_time" in event:
            if i % 3 == 0:
                event["twclid"] = f"26l6412g5p4iyj65a{i:07d}"
            if i % 5 == 0:
                event.pop("phone", None)
            value = orjson.dumps(event)
        out.append(value)
    return out


async def sandbox_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/_sandbox/stats") as r:
        body: dict[str, Any] = await r.json()
        return body


async def set_faults(url: str, faults: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/_sandbox/faults", json=faults) as r:
        assert r.status == 200, await r.text()


def answered(stats: dict[str, Any], status: int) -> int:
    """How many times the sandbox answered X's routes with `status` (injected or real)."""
    real = sum(int(by.get(str(status), 0)) for by in stats["requests"].values())
    injected = int(stats["faults"].get(f"error_{status}", 0))
    return real + injected


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (p["title"], t["expr"].replace("$job", JOB))
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    ]


def panel_query(title: str) -> str:
    return next(expr for t, expr in dashboard_queries() if t == title)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[SandboxServer]:
    config = many_accounts_config(tmp_path / "accounts.toml")
    async with SandboxServer(load_sandbox_config(config, {})) as server:
        yield server


async def test_prometheus_sees_the_run_exactly_and_the_right_alerts_fire(
    kafka_bootstrap: str,
    topic_prefix: str,
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay")
    config = tmp_path / "accounts.toml"
    relay_config = many_accounts_config(tmp_path / "relay-accounts.toml", relay_side=True)
    http_port = free_port()
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_CONFIG=str(relay_config),
        RELAY_HTTP_PORT=http_port,
        RELAY_SHUTDOWN_GRACE_S=1,
        RELAY_WEB_BATCH_SIZE=40,
        RELAY_RETRY_BASE_S=0.05,
        RELAY_RETRY_MAX_S=0.2,
        RELAY_METRICS_TOP_ACCOUNTS=TOP_ACCOUNTS,
        RELAY_TOPIC_PARTITIONS=4,
        RELAY_TOPIC_REPLICATION_FACTOR=1,
    )
    input_topic = next(iter(settings.inputs))
    await ensure_topics(kafka_bootstrap, [input_topic], partitions=4)
    pixels = usable_pixels(load_mapping(config))
    expected = ProduceSummary()
    synthetic = list(generate_web(800, pixels, invalid_ratio=0.1, seed=41))
    for s in synthetic:
        expected.add(s.expect)
    values = mixed_identifiers([s.value for s in synthetic])
    bad = [
        orjson.dumps({**orjson.loads(v), "pixel_id": "px000", "event_id": BAD_EVENT_ID})
        for v, s in zip(values, synthetic, strict=True)
        if s.expect == "deliver" and orjson.loads(v)["pixel_id"] == "px000"
    ][:3]
    assert len(bad) == 3
    forbidden = [
        orjson.dumps(
            {**orjson.loads(v), "pixel_id": "pxx", "event_id": "evx", "account_id": "acctx"}
        )
        for v, s in zip(values, synthetic, strict=True)
        if s.expect == "deliver"
    ][:FORBIDDEN]

    worker = Worker(settings, http_host="127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with prometheus(tmp_path, [f"127.0.0.1:{http_port}"], JOB) as prom:
            # Scraped once before any event: every series starts at 0 in Prometheus too.
            await prom.wait_for('relay_events_delivered_total{kind="web"} == 0', 30, "a scrape")
            await wait_for(lambda: worker.readiness()[0], 30, "the worker to be ready")

            # Phase 1: 429s at random, three events X rejects (splits), invalid records.
            await set_faults(sandbox.url, {"error_rates": {"429": 0.2}, "seed": 5})
            await produce_values(kafka_bootstrap, input_topic, [*values, *bad, *forbidden])
            settled = expected.deliver + expected.dead_letter + len(bad) + len(forbidden)

            def done() -> bool:
                m = worker.metrics
                return (
                    m.total("relay_events_delivered") + m.total("relay_events_dead_lettered")
                    >= settled
                )

            await wait_for(done, 60, "phase 1 to settle")

            # Phase 2: X rejects the credentials; new events are held, not dead-lettered.
            await set_faults(sandbox.url, {"error_rates": {"401": 1.0}})
            held = [s.value for s in generate_web(30, pixels, seed=42)]
            await produce_values(kafka_bootstrap, input_topic, held)
            await wait_for(lambda: worker.readiness()[1].startswith("X rejects"), 30, "a 401")
            await prom.wait_for("relay_credentials_ok == 0", 15, "the 401 to be scraped")
            await prom.wait_for(
                'sum(relay_consumer_lag_records{stage="deliver"}) > 0', 15, "lag of held events"
            )
            await prom.wait_for('ALERTS{alertname="RelayCredentialsRejected"}', 15, "the alert")

            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{http_port}/metrics") as resp,
            ):
                exposition = await resp.text()
            # One instant for every query: the last scrape, so that increase() is exact.
            at = await prom.scalar("timestamp(relay_build_info)")
            await check_panels(
                prom, at, kafka_bootstrap, settings.dlq_topic, sandbox.url, len(bad), FORBIDDEN
            )
            await check_alerts(prom, at)
            stats = await sandbox_stats(sandbox.url)
            assert await prom.scalar('sum(relay_api_requests_total{status="401"})', at) == answered(
                stats, 401
            )
    finally:
        stop.set()
        await task
    check_labels(exposition, values + held)
    # One line each for the 429 hold, the split, and every dead-letter class of the run.
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("relay.pipeline")]
    assert any(m.startswith("X answered 429: account holds") for m in messages)
    assert any(m.startswith("X answered 400 for a batch") for m in messages)
    assert any(m.startswith("X answered 403 for this account/target") for m in messages)
    classes = {getattr(r, "error_class", None) for r in caplog.records} - {None}
    dead = {
        h.decode()
        for r in await read_all(kafka_bootstrap, settings.dlq_topic, 1)
        for k, h in r.headers
        if k == "relay.error.class"
    }
    assert classes == dead
    assert sum(m.startswith("X answered 400 for a batch") for m in messages) == 1, "rate-limited"


async def check_panels(
    prom: Prometheus,
    at: float,
    bootstrap: str,
    dlq_topic: str,
    sandbox_url: str,
    bad: int,
    forbidden: int,
) -> None:
    for title, expr in dashboard_queries():
        result = await prom.query(expr, at)
        assert result, f"panel {title!r} returns no data: {expr}"
        assert finite_values(result), f"panel {title!r} has only NaN: {expr} -> {result}"

    stats = await sandbox_stats(sandbox_url)
    dead = await read_all(bootstrap, dlq_topic, 1)
    rejected = sum(1 for r in dead if dict(r.headers).get("relay.error.class") == b"rejected")
    assert rejected == bad + forbidden
    assert answered(stats, 429) >= 1 and answered(stats, 400) > bad, "the faults did not happen"
    assert answered(stats, 403) >= 1

    async def panel(title: str) -> float:
        return await prom.scalar(panel_query(title), at)

    assert await panel("Dead-lettered (1h)") == len(dead)
    assert await panel("X answered 429 (1h)") == answered(stats, 429)
    # Every 400 on a batch of more than one splits it; the last ones dead-letter the event.
    assert await panel("Batches split after a 400 (1h)") == answered(stats, 400) - bad
    delivered = await prom.scalar("sum(relay_events_delivered_total)", at)
    assert delivered == stats["conversions_accepted"] - stats["duplicates"]
    by_set = await prom.query(
        panel_query("Delivered events by identifier set")
        .replace("rate(", "increase(")
        .replace("[5m]", "[1h]"),
        at,
    )
    assert round(sum(finite_values(by_set))) == delivered
    assert {r["metric"]["identifiers"] for r in by_set if float(r["value"][1]) > 0} >= {
        "twclid+email+phone+ip_ua",
        "email+phone+ip_ua",
        "email+ip_ua",
    }
    lag = await prom.query(panel_query("Consumer lag by partition"), at)
    assert max(finite_values(lag)) > 0
    latency = await prom.query(panel_query("End-to-end latency (Kafka record to X's 2xx)"), at)
    assert any(v > 0 for v in finite_values(latency))
    assert 0 < await panel("Weak matches (no click id or device id)") < 1


async def check_alerts(prom: Prometheus, at: float) -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    holding = {r["alert"] for r in rules if await prom.query(r["expr"], at)}
    assert holding == EXPECTED_ALERTS
    # Prometheus's own evaluation of the loaded rules agrees: pending or firing.
    alerts = await prom.get("/api/v1/alerts")
    states = {a["labels"]["alertname"]: a["state"] for a in alerts["alerts"]}
    assert set(states) == EXPECTED_ALERTS
    assert states["RelayRateLimited"] == "firing"  # no `for`: at once
    assert states["RelayEventsRejected"] == "firing"


EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[a-z]{2,}", re.I)
PHONE = re.compile(r"^\+?\d{8,}$")
UUID_OR_HASH = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?|^[0-9a-f]{32,}$", re.I)


def check_labels(exposition: str, inputs: list[bytes]) -> None:
    values_by_label: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            for name, value in sample.labels.items():
                values_by_label.setdefault(name, set()).add(value)
    for name, values in values_by_label.items():
        assert len(values) <= 40, f"label {name} has {len(values)} values: unbounded?"
        for value in values:
            assert not EMAIL.search(value), (name, value)
            assert not PHONE.match(value), (name, value)
            assert not UUID_OR_HASH.match(value), (name, value)
    accounts = values_by_label["account"]
    assert "other" in accounts and len(accounts) <= TOP_ACCOUNTS + 1
    # No raw value of any input event shows up anywhere in /metrics.
    raw: set[str] = set()
    for record in inputs:
        try:
            event = orjson.loads(record)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            raw |= {
                str(event[k]).strip()
                for k in ("email", "phone", "ip_address", "conversion_id", "twclid")
                if event.get(k)
            }
    leaked = sorted(v for v in raw if v and v in exposition)
    assert not leaked, leaked[:5]
