"""Delivery under X's failures, injected by the sandbox: retries, 429s, dropped connections,
exhausted retries, and an account budget shared with the sandbox."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from relay.config import default_mapping_path, load_mapping
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.worker import Worker
from relay.sandbox.config import load_sandbox_config
from relay.sandbox.server import SandboxServer
from relay.tools.produce import generate_web, usable_pixels
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, read_all, wait_for


async def set_faults(url: str, faults: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/_sandbox/faults", json=faults) as r:
        assert r.status == 200, await r.text()


async def stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/_sandbox/stats") as r:
        body: dict[str, Any] = await r.json()
        return body


def events(count: int, seed: int) -> list[bytes]:
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    return [s.value for s in generate_web(count, pixels, seed=seed)]


async def run_until_settled(worker: Worker, count: int, timeout_s: float = 60) -> None:
    def settled(m: Metrics) -> bool:
        return m.total("relay_events_delivered") + m.total("relay_events_dead_lettered") >= count

    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: task.done() or settled(worker.metrics), timeout_s, "settling")
    finally:
        stop.set()
        await task


def requests_with_status(m: Metrics, status: str) -> float:
    value = m.registry.get_sample_value(
        "relay_api_requests_total", {"endpoint": "measurement/conversions", "status": status}
    )
    return value or 0.0


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rates": {"503": 0.5, "500": 0.2}, "seed": 3},
        {"drop_rate": 0.4, "seed": 4},
        {"storm_s": 4.0},  # longer than the worker takes to join its groups
    ],
    ids=["5xx", "dropped-connections", "429-storm"],
)
async def test_transient_failures_cost_retries_not_events(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer, faults: dict[str, Any]
) -> None:
    count = 1500
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_WEB_BATCH_SIZE=100,
        RELAY_MAX_ATTEMPTS=30,
        RELAY_RETRY_BASE_S=0.05,
        RELAY_RETRY_MAX_S=0.5,
    )
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), events(count, 21))
    await set_faults(sandbox.url, faults)
    worker = Worker(settings, serve_http=False)
    await run_until_settled(worker, count)
    assert worker.metrics.total("relay_events_delivered") == count
    assert worker.metrics.total("relay_events_dead_lettered") == 0
    assert worker.metrics.total("relay_delivery_retries") > 0
    # By X's own headers, nothing went after the relay had learned a reset, before it.
    assert worker.metrics.total("relay_requests_before_reset") == 0
    sandbox_stats = await stats(sandbox.url)
    assert sandbox_stats["conversions_accepted"] - sandbox_stats["duplicates"] == count


async def test_a_429_storm_mid_run_holds_each_account_until_the_reset_x_announced(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    # Mid-run, X's window reset is known (its answers carry the 900 s window's end); a storm's
    # 429 announces an earlier reset, and a Retry-After in whole seconds that may end before
    # it. Nothing may go for the account before that reset.
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url, RELAY_WEB_BATCH_SIZE=50)
    topic = next(iter(settings.inputs))
    await produce_values(kafka_bootstrap, topic, events(200, 31))
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    delivered = worker.metrics
    try:
        await wait_for(
            lambda: delivered.total("relay_events_delivered") >= 200, 60, "the first events"
        )
        # The storm ends just past a whole second: its reset (the next whole second) comes
        # almost a second after a Retry-After in whole seconds would let the account go.
        now = time.time()
        await set_faults(sandbox.url, {"storm_s": math.ceil(now + 1.5) + 0.05 - now})
        await produce_values(kafka_bootstrap, topic, events(600, 32))
        await wait_for(
            lambda: task.done() or delivered.total("relay_events_delivered") >= 800,
            60,
            "every event, after the storm",
        )
    finally:
        stop.set()
        await task
    assert (await stats(sandbox.url))["faults"].get("storm_429", 0) >= 1
    assert delivered.total("relay_requests_before_reset") == 0


async def test_an_outage_that_outlasts_the_retry_time_dead_letters_with_the_attempts(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    # X answering only 500 is an outage: the attempts are not charged against
    # RELAY_MAX_ATTEMPTS; the events are held for RELAY_RETRY_FOR_S, then dead-lettered.
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_MAX_ATTEMPTS=3,
        RELAY_RETRY_BASE_S=0.05,
        RELAY_RETRY_MAX_S=0.2,
        RELAY_RETRY_FOR_S=2,
        RELAY_CIRCUIT_PROBE_S=0.1,
    )
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), events(40, 22))
    await set_faults(sandbox.url, {"error_rates": {"500": 1.0}})
    worker = Worker(settings, serve_http=False)
    await run_until_settled(worker, 40)
    assert worker.metrics.total("relay_events_dead_lettered") == 40
    assert requests_with_status(worker.metrics, "500") > 3
    dead = await read_all(kafka_bootstrap, settings.dlq_topic, 40)
    assert len(dead) == 40
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["relay.error.class"] == "retries_exhausted"
    assert int(headers["relay.error.attempts"]) > 3
    assert headers["relay.error.http_status"] == "500"
    first = datetime.fromisoformat(headers["relay.error.first_attempt_at"])
    last = datetime.fromisoformat(headers["relay.error.last_attempt_at"])
    assert (last - first).total_seconds() >= 2.0
    assert "conversion_time" in outbound.decode(dead[0].value).payload_dict()


async def test_the_account_budget_is_kept_without_a_single_429(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # X (the sandbox) and the relay agree on 1,000 events per 2 s per account.
    env = {"RELAY_ACCOUNT_LIMIT": "1000", "RELAY_ACCOUNT_WINDOW_S": "2"}
    async with SandboxServer(load_sandbox_config(None, env)) as sandbox:
        pixels = [p for p in usable_pixels(load_mapping(default_mapping_path()))][:1]
        values = [s.value for s in generate_web(2500, pixels, seed=23)]
        settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url, **env)
        await produce_values(kafka_bootstrap, next(iter(settings.inputs)), values)
        worker = Worker(settings, serve_http=False)
        started = asyncio.get_running_loop().time()
        await run_until_settled(worker, 2500)
        elapsed = asyncio.get_running_loop().time() - started
        assert worker.metrics.total("relay_events_delivered") == 2500
        assert requests_with_status(worker.metrics, "429") == 0
        # 2,500 events at 1,000 per window need three of X's windows: two resets at least.
        assert elapsed >= 2.0


async def test_an_outage_of_x_holds_delivery_then_resumes_without_dead_letters(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    count = 600
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_WEB_BATCH_SIZE=50,
        RELAY_MAX_ATTEMPTS=2,
        RELAY_RETRY_BASE_S=0.05,
        RELAY_RETRY_MAX_S=0.3,
        RELAY_CIRCUIT_PROBE_S=0.2,
    )
    await set_faults(sandbox.url, {"error_rates": {"503": 1.0}})
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), events(count, 24))
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        # X answers only 503: the circuit opens, readiness and a metric say why.
        await wait_for(lambda: "unavailable" in worker.readiness()[1], 30, "the circuit")
        assert worker.readiness()[0] is False
        blocked = worker.metrics.registry.get_sample_value(
            "relay_delivery_blocked", {"reason": "circuit_open"}
        )
        assert blocked == 1
        failed = requests_with_status(worker.metrics, "503")
        assert failed > settings.max_attempts  # an outage charges no attempts
        await set_faults(sandbox.url, {})
        await wait_for(
            lambda: worker.metrics.total("relay_events_delivered") >= count, 60, "recovery"
        )
        assert worker.readiness()[0] is True
    finally:
        stop.set()
        await task
    assert worker.metrics.total("relay_events_dead_lettered") == 0
    sandbox_stats = await stats(sandbox.url)
    assert sandbox_stats["conversions_accepted"] - sandbox_stats["duplicates"] == count


async def test_each_window_of_x_is_used_whole_when_batches_do_not_fit_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # 700 per window is no multiple of the 500-event batch: the relay sends what X says
    # remains (a batch of 200) instead of waiting for the next window with 200 unspent.
    env = {"RELAY_ACCOUNT_LIMIT": "700", "RELAY_ACCOUNT_WINDOW_S": "2"}
    async with SandboxServer(load_sandbox_config(None, env)) as sandbox:
        pixels = [p for p in usable_pixels(load_mapping(default_mapping_path()))][:1]
        count = 2800
        values = [s.value for s in generate_web(count, pixels, seed=25)]
        settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url, **env)
        await produce_values(kafka_bootstrap, next(iter(settings.inputs)), values)
        worker = Worker(settings, serve_http=False)
        await run_until_settled(worker, count)
        assert worker.metrics.total("relay_events_delivered") == count
        assert requests_with_status(worker.metrics, "429") == 0
        async with aiohttp.ClientSession() as s, s.get(f"{sandbox.url}/_sandbox/journal") as r:
            entries = (await r.json())["conversions"]
    per_window: dict[int, int] = {}
    for entry in entries:
        at = datetime.fromisoformat(entry["received_at"].replace("Z", "+00:00")).timestamp()
        per_window[int(at // 2)] = per_window.get(int(at // 2), 0) + 1
    windows = [per_window[w] for w in sorted(per_window)]
    assert sum(windows) == count
    # The first window is the part of X's window left when the relay started; the last
    # holds what remains. Every window between is used whole.
    assert len(windows) >= 4, windows
    assert all(n == 700 for n in windows[1:-1]), windows
