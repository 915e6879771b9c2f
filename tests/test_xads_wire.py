"""The client's last check: a request waits for a pooled connection in the client, where the
caller's `admit` is asked just before it is written; what the caller learned while it waited
still stops it, and X (the sandbox over HTTP) sees nothing of it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest

from relay.config import default_mapping_path, load_settings
from relay.sandbox.server import SandboxServer
from relay.xads.client import XAdsClient
from relay.xads.egress import Egress
from relay.xads.errors import NotSent
from tests.sandbox_fixtures import control

CREDENTIALS = load_settings({"RELAY_CONFIG": str(default_mapping_path())}).credentials
PIXEL = "o8z6j"
ENDPOINT = "POST /12/measurement/conversions/{pixel_id}"


def body(conversion_id: str) -> bytes:
    conversion = {
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "event_id": "o87ne",
        "conversion_id": conversion_id,
        "identifiers": [{"twclid": "23opevjt88psuo13lu8d020qkn"}],
    }
    return orjson.dumps({"conversions": [conversion]})


async def test_a_request_waiting_for_a_connection_is_withheld_by_what_was_learned_meanwhile(
    sandbox: SandboxServer,
) -> None:
    url = sandbox.url
    await control(url, "POST", "faults", {"latency_ms": 500})
    allowed = {"go": True}
    asked: list[bool] = []

    def admit() -> bool:
        asked.append(allowed["go"])
        return allowed["go"]

    async def delayed() -> int:
        return int((await control(url, "GET", "stats"))["faults"].get("latency", 0))

    async with XAdsClient(url, CREDENTIALS, egress=Egress(max_connections=1)) as client:
        first = asyncio.create_task(client.post_web_conversions_body(PIXEL, body("c1")))
        await wait_for_async(lambda: delayed(), 1, "the first request at X")
        # The second starts while the only connection is busy; meanwhile the caller learns
        # that it must not go (as a 429 for its account would tell).
        started = asyncio.Event()

        async def second_request() -> object:
            started.set()
            return await client.post_web_conversions_body(PIXEL, body("c2"), admit=admit)

        second = asyncio.create_task(second_request())
        await started.wait()
        allowed["go"] = False
        assert (await first).conversions_processed == 1
        with pytest.raises(NotSent):
            await second
        assert asked == [False], "asked once, when the connection was free, not at the start"
        third = await client.post_web_conversions_body(PIXEL, body("c3"), admit=admit_all)
        assert third.conversions_processed == 1
    stats = await control(url, "GET", "stats")
    assert stats["faults"]["latency"] == 2, "X saw the first and the third request only"
    assert stats["conversions_accepted"] == 2


def admit_all() -> bool:
    return True


async def wait_for_async(
    count: Callable[[], Awaitable[int]], at_least: int, what: str, timeout_s: float = 20
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await count() < at_least:
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
