"""`relay run` as a real process: health endpoints, SIGTERM, and a crash (SIGKILL) that
loses nothing Kafka acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from relay.broker import free_port
from relay.config import default_mapping_path, load_mapping
from relay.formats.base import OutboundEvent
from relay.pipeline import outbound
from relay.tools.produce import generate_web, usable_pixels
from relay.tools.stack import sandbox_process, sandbox_stats
from tests.kafka_helpers import committed_and_end, produce_values, wait_for_async


def worker_env(bootstrap: str, prefix: str, sandbox_url: str, http_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "RELAY_KAFKA_BOOTSTRAP": bootstrap,
        "RELAY_API_BASE_URL": sandbox_url,
        "RELAY_CONFIG": str(default_mapping_path()),
        "RELAY_TOPIC_PREFIX": prefix,
        "RELAY_INPUTS": f"{prefix}.input.web=web",
        "RELAY_ACCOUNT_LIMIT": "900000000",
        "RELAY_HTTP_PORT": str(http_port),
        "RELAY_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "RELAY_LINGER_S": "0.05",
    }


async def start_worker(env: Mapping[str, str], stage: str = "all") -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "run",
        "--stage",
        stage,
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


async def app_journal(url: str) -> list[dict[str, Any]]:
    status, body = await get_json(f"{url}/_sandbox/journal?kind=app")
    assert status == 200
    entries: list[dict[str, Any]] = body["conversions"]
    return entries


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with sandbox_process() as url:
        yield url


async def test_sigterm_drains_commits_and_exits_zero(
    kafka_bootstrap: str, topic_prefix: str, sandbox_url: str
) -> None:
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    input_topic = f"{topic_prefix}.input.web"
    await produce_values(
        kafka_bootstrap, input_topic, [s.value for s in generate_web(2000, pixels, seed=11)]
    )
    port = free_port()
    process = await start_worker(worker_env(kafka_bootstrap, topic_prefix, sandbox_url, port))
    try:

        async def delivered() -> bool:
            return bool((await sandbox_stats(sandbox_url))["conversions_accepted"] >= 2000)

        await wait_for_async(delivered, 60, "all events delivered")
        status, body = await get_json(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body["status"] == "ready"
        status, _ = await get_json(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            metrics = await resp.text()
        assert "relay_events_delivered_total" in metrics
        assert "@" not in metrics  # no emails in labels
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    offsets = await committed_and_end(
        kafka_bootstrap, f"{topic_prefix}-deliver", f"{topic_prefix}.outbound"
    )
    assert offsets and all((c or 0) == end for c, end in offsets.values()), offsets


async def test_a_killed_worker_loses_nothing(
    kafka_bootstrap: str, topic_prefix: str, sandbox_url: str
) -> None:
    count = 20_000
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    await produce_values(
        kafka_bootstrap,
        f"{topic_prefix}.input.web",
        [s.value for s in generate_web(count, pixels, seed=12)],
    )
    env = worker_env(kafka_bootstrap, topic_prefix, sandbox_url, free_port())
    env["RELAY_MAX_IN_FLIGHT_PER_ACCOUNT"] = "2"
    env["RELAY_LEDGER_MAX_UNACKED_KEYS"] = "4000"
    first = await start_worker(env)
    try:

        async def some_delivered() -> bool:
            return bool((await sandbox_stats(sandbox_url))["conversions_accepted"] >= 2000)

        await wait_for_async(some_delivered, 60, "the first deliveries")
        first.kill()  # no drain, no commit: whatever was in flight is read again
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    before = await sandbox_stats(sandbox_url)
    assert before["conversions_accepted"] < count, "the crash came too late to mean anything"
    env["RELAY_HTTP_PORT"] = str(free_port())
    second = await start_worker(env)
    try:

        async def all_unique_delivered() -> bool:
            stats = await sandbox_stats(sandbox_url)
            return bool(stats["conversions_accepted"] - stats["duplicates"] >= count)

        await wait_for_async(all_unique_delivered, 120, "every event after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    stats = await sandbox_stats(sandbox_url)
    # Every event arrived; replays after the crash are X's duplicates, deduplicated by the
    # stable conversion_id, never new conversions.
    assert stats["conversions_accepted"] - stats["duplicates"] == count
    # The delivered ledger keeps the replays the restart reads again from reaching X: what
    # reaches it twice is what was in requests at the kill plus the delivered keys not yet
    # acknowledged on the ledger, and no request starts that would take the two past
    # RELAY_LEDGER_MAX_UNACKED_KEYS (README, "Duplicates after a crash"), however loaded the
    # machine (its ledger writes slower).
    assert stats["duplicates"] <= 4000


async def test_a_killed_worker_loses_no_app_conversion_and_bounds_the_duplicates(
    kafka_bootstrap: str, topic_prefix: str, sandbox_url: str
) -> None:
    # X has no dedup key for conversion_event: each duplicate is a double-counted install.
    count = 3000
    values = [
        outbound.encode(
            OutboundEvent(
                "app",
                "18ce54d4x5t",
                "333903271",
                {
                    "app_id": "333903271",
                    "os_type": "IOS",
                    "hashed_device_id": f"device-{i:05d}",
                    "conversion_type": "INSTALL",
                    "conversion_time": "2026-11-20T10:00:00.123Z",
                },
            )
        )
        for i in range(count)
    ]
    await produce_values(kafka_bootstrap, f"{topic_prefix}.outbound", values)
    env = worker_env(kafka_bootstrap, topic_prefix, sandbox_url, free_port())
    in_flight = 8
    env["RELAY_MAX_IN_FLIGHT_PER_ACCOUNT"] = str(in_flight)
    first = await start_worker(env, "deliver")
    try:

        async def some_delivered() -> bool:
            return bool((await sandbox_stats(sandbox_url))["app_conversions_accepted"] >= 500)

        await wait_for_async(some_delivered, 60, "the first app conversions")
        first.kill()
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert (await sandbox_stats(sandbox_url))["app_conversions_accepted"] < count
    env["RELAY_HTTP_PORT"] = str(free_port())
    second = await start_worker(env, "deliver")
    try:

        async def all_delivered() -> bool:
            journal = await app_journal(sandbox_url)
            return len({e["params"]["hashed_device_id"] for e in journal}) >= count

        await wait_for_async(all_delivered, 120, "every app conversion after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    journal = await app_journal(sandbox_url)
    devices = [e["params"]["hashed_device_id"] for e in journal]
    assert len(set(devices)) == count  # nothing lost
    # Sent twice at most: the requests in flight at the kill plus the ledger keys not yet
    # written (0.1 s of deliveries; well under 2,000 at this rate).
    assert len(devices) - count <= in_flight + 2000
