"""Fault injection: what a real client sees, the control routes, the command line."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from relay.broker import free_port
from relay.cli import build_parser
from relay.sandbox.faults import DROP, HANG, FaultInjector, Faults, FaultsError, parse_error_rates
from relay.xads.errors import RateLimited, ServerError, TransportError
from tests.mact_fixtures import EVENT, EXAMPLE_EVENT, EXAMPLE_PARAMS, call, relay_client
from tests.sandbox_fixtures import ACCOUNT, PIXEL, Reply, SandboxClient, conversion, running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    async with running_sandbox() as client:
        yield client


async def set_faults(sandbox: SandboxClient, **faults: Any) -> Reply:
    return await sandbox.request(
        "POST", f"{sandbox.url}/_sandbox/faults", data=orjson.dumps(faults), headers={}
    )


async def must_set(sandbox: SandboxClient, **faults: Any) -> dict[str, Any]:
    reply = await set_faults(sandbox, **faults)
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


async def send(sandbox: SandboxClient) -> int:
    return (await sandbox.post_conversions({"conversions": [conversion()]})).status


# -- each kind, as a real client sees it -------------------------------------------------------


async def test_an_error_rate_of_one_answers_every_request_with_it(sandbox: SandboxClient) -> None:
    await must_set(sandbox, error_rates={"503": 1.0}, retry_after_s=2)
    async with relay_client(sandbox) as client:
        for _ in range(3):
            with pytest.raises(ServerError) as caught:
                await client.post_web_conversions(PIXEL, [conversion()])
            assert caught.value.status == 503
            assert caught.value.code == "SERVICE_UNAVAILABLE"
            assert caught.value.rate_limit.retry_after_s == 2
        with pytest.raises(ServerError):
            await client.conversion_event(EXAMPLE_EVENT)
    assert (await sandbox.journal())["total"] == 0
    assert (await sandbox.journal(kind="app"))["total"] == 0
    stats = await sandbox.stats()
    assert stats["faults"] == {"error_503": 4}
    assert stats["requests"] == {}, "injected answers are not the endpoints'"


async def test_gateway_errors_have_no_json_body(sandbox: SandboxClient) -> None:
    await must_set(sandbox, error_rates={"502": 1.0})
    reply = await sandbox.post_conversions({"conversions": [conversion()]})
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    async with relay_client(sandbox) as client:
        with pytest.raises(ServerError) as caught:
            await client.post_web_conversions(PIXEL, [conversion()])
    assert caught.value.status == 502
    assert caught.value.retryable


async def test_latency_is_visible(sandbox: SandboxClient) -> None:
    await must_set(sandbox, latency_ms=150, latency_jitter_ms=50)
    async with relay_client(sandbox) as client:
        started = time.monotonic()
        result = await client.post_web_conversions(PIXEL, [conversion()])
        elapsed = time.monotonic() - started
    assert result.conversions_processed == 1
    assert elapsed >= 0.15
    assert (await sandbox.stats())["faults"] == {"latency": 1}


async def test_a_dropped_connection_is_a_transport_error(sandbox: SandboxClient) -> None:
    await must_set(sandbox, drop_rate=1.0)
    async with relay_client(sandbox) as client:
        with pytest.raises(TransportError) as caught:
            await client.post_web_conversions(PIXEL, [conversion()])
    assert caught.value.retryable
    assert (await sandbox.journal())["total"] == 0
    assert (await sandbox.stats())["faults"] == {"drop": 1}


async def test_a_hang_ends_in_a_client_timeout(sandbox: SandboxClient) -> None:
    await must_set(sandbox, hang_rate=1.0, hang_max_s=60)
    async with relay_client(sandbox, timeout_s=0.3) as client:
        with pytest.raises(TransportError, match="timed out"):
            await client.post_web_conversions(PIXEL, [conversion()])
    assert (await sandbox.stats())["faults"] == {"hang": 1}
    # Leaving the fixture closes the sandbox at once: hanging requests are released.


async def test_a_hang_is_bounded(sandbox: SandboxClient) -> None:
    await must_set(sandbox, hang_rate=1.0, hang_max_s=0.05)
    async with relay_client(sandbox, timeout_s=30) as client:
        with pytest.raises(TransportError):
            await client.post_web_conversions(PIXEL, [conversion()])


async def test_a_429_storm_then_recovery_by_the_clock() -> None:
    now = [time.time()]
    async with running_sandbox(clock=lambda: now[0]) as sandbox:
        await must_set(sandbox, storm_s=60)
        storm_end = math.ceil(now[0] + 60)
        async with relay_client(sandbox) as client:
            for _ in range(2):
                with pytest.raises(RateLimited) as caught:
                    await client.post_web_conversions(PIXEL, [conversion()])
                limits = caught.value.rate_limit
                assert limits.remaining == 0
                assert limits.reset_epoch_s == storm_end
                assert limits.retry_after_s == 60
            with pytest.raises(RateLimited):
                await client.conversion_event(EXAMPLE_EVENT)
            assert (await sandbox.control("GET", "faults")).body["storm_remaining_s"] == 60
            now[0] += 60
            result = await client.post_web_conversions(PIXEL, [conversion()])
        assert result.conversions_processed == 1
        assert result.rate_limit.remaining == 60_000 - 1, "the account's own headers again"
        assert (await sandbox.stats())["faults"] == {"storm_429": 3}


async def test_requests_before_an_announced_reset_are_counted() -> None:
    now = [time.time()]
    async with running_sandbox(clock=lambda: now[0]) as sandbox:
        await must_set(sandbox, storm_s=10)
        announced = now[0]
        assert await send(sandbox) == 429  # announces the account's reset
        now[0] += 1.5
        assert await send(sandbox) == 429  # too early: counted
        assert (await sandbox.stats())["requests_before_reset"] == 1
        reset = math.ceil(announced + 10)
        now[0] = reset  # the reset the 429 announced
        assert await send(sandbox) == 200
        assert (await sandbox.stats())["requests_before_reset"] == 1
        early = (await sandbox.control("GET", "early-requests")).body
        assert early == {
            "requests": [
                {
                    "account_id": ACCOUNT,
                    "arrived_at": announced + 1.5,
                    "reset": reset,
                    "announced_at": announced,
                }
            ],
            "total": 1,
        }


async def test_an_injected_429_carries_reset_headers(sandbox: SandboxClient) -> None:
    await must_set(sandbox, error_rates={"429": 1.0}, retry_after_s=5)
    reply = await sandbox.post_conversions({"conversions": [conversion()]})
    assert reply.status == 429
    assert reply.body["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert reply.headers["x-account-rate-limit-remaining"] == "0"
    assert int(reply.headers["x-account-rate-limit-reset"]) >= int(time.time()) + 4
    assert reply.headers["Retry-After"] == "5"


# -- control --------------------------------------------------------------------------------


async def test_control_routes_are_never_faulted(sandbox: SandboxClient) -> None:
    await must_set(sandbox, error_rates={"500": 0.5}, drop_rate=0.5, latency_ms=0)
    for name in ("journal", "stats", "config", "faults", "engagements"):
        assert (await sandbox.control("GET", name)).status == 200, name
    assert (await sandbox.stats())["faults"] == {}


async def test_faults_are_shown_and_cleared(sandbox: SandboxClient) -> None:
    shown = await must_set(sandbox, error_rates={"500": 0.25, "503": 0.5}, seed=7)
    assert shown["error_rates"] == {"500": 0.25, "503": 0.5}
    assert shown["seed"] == 7
    assert shown["active"] is True
    assert (await sandbox.control("GET", "faults")).body == shown
    cleared = await sandbox.control("DELETE", "faults")
    assert cleared.status == 200
    assert cleared.body["active"] is False
    assert await send(sandbox) == 200

    await must_set(sandbox, error_rates={"500": 1.0})
    assert await send(sandbox) == 500
    assert (await sandbox.control("POST", "reset")).status == 200
    assert (await sandbox.control("GET", "faults")).body["active"] is False
    assert await send(sandbox) == 200
    assert (await sandbox.stats())["faults"] == {}


async def test_a_path_filter(sandbox: SandboxClient) -> None:
    await must_set(sandbox, error_rates={"500": 1.0}, path_prefix=EVENT)
    assert await send(sandbox) == 200
    assert (await call(sandbox, EVENT, EXAMPLE_PARAMS)).status == 500


async def test_a_seed_repeats_the_same_faults(sandbox: SandboxClient) -> None:
    async def pattern() -> list[int]:
        await must_set(sandbox, error_rates={"500": 0.5}, seed=42)
        return [await send(sandbox) for _ in range(16)]

    first = await pattern()
    assert set(first) == {200, 500}
    assert await pattern() == first


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "JSON"),
        (b"[]", "object"),
        (orjson.dumps({"error_rates": {"500": 1.5}}), "from 0 to 1"),
        (orjson.dumps({"error_rates": {"200": 0.1}}), "400..599"),
        (orjson.dumps({"error_rates": {"abc": 0.1}}), "400..599"),
        (orjson.dumps({"error_rates": [500]}), "error_rates"),
        (orjson.dumps({"error_rates": {"500": 0.6}, "drop_rate": 0.6}), "at most 1"),
        (orjson.dumps({"hang_rate": -0.1}), "hang_rate"),
        (orjson.dumps({"latency_ms": "fast"}), "latency_ms"),
        (orjson.dumps({"latency_ms": -1}), "latency_ms"),
        (orjson.dumps({"hang_max_s": 3600}), "hang_max_s"),
        (orjson.dumps({"seed": 1.5}), "seed"),
        (orjson.dumps({"path_prefix": "12/"}), "path_prefix"),
        (orjson.dumps({"storm": 5}), "unknown fault field(s): storm"),
    ],
)
async def test_bad_faults_are_400(sandbox: SandboxClient, body: bytes, message: str) -> None:
    reply = await sandbox.request("POST", f"{sandbox.url}/_sandbox/faults", data=body, headers={})
    assert reply.status == 400
    assert message in reply.body["errors"][0]["message"]
    assert (await sandbox.control("GET", "faults")).body["active"] is False


# -- the model and the command line -----------------------------------------------------------


def test_decisions_follow_the_rates() -> None:
    injector = FaultInjector()
    injector.set(Faults(error_rates={503: 0.2}, drop_rate=0.1, hang_rate=0.1, seed=1), 0.0)
    outcomes = [injector.decide(0.0).outcome for _ in range(10_000)]
    assert abs(outcomes.count(503) / 10_000 - 0.2) < 0.02
    assert abs(outcomes.count(DROP) / 10_000 - 0.1) < 0.02
    assert abs(outcomes.count(HANG) / 10_000 - 0.1) < 0.02
    assert abs(outcomes.count(None) / 10_000 - 0.6) < 0.02
    assert injector.applies_to("/12/anything")
    injector.clear()
    assert not injector.applies_to("/12/anything")


def test_the_command_line_flags() -> None:
    args = build_parser().parse_args(
        [
            "sandbox",
            "--error-rate",
            "503=0.05",
            "--error-rate",
            "500=0.1",
            "--latency-ms",
            "20",
            "--hang-rate",
            "0.01",
            "--drop-rate",
            "0.02",
            "--seed",
            "3",
        ]
    )
    assert parse_error_rates(args.error_rate) == {503: 0.05, 500: 0.1}
    assert (args.latency_ms, args.hang_rate, args.drop_rate, args.seed) == (20, 0.01, 0.02, 3)
    for bad in ("503", "503=x", "200=0.1"):
        with pytest.raises(FaultsError):
            parse_error_rates([bad])
    with pytest.raises(FaultsError):
        Faults(error_rates={500: 2.0})


async def test_relay_sandbox_injects_its_flags() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "sandbox",
        "--port",
        str(port),
        "--error-rate",
        "503=1",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"listening" in line
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}"
            async with session.post(f"{url}/12/conversion_event") as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "1"
            async with session.get(f"{url}/_sandbox/faults") as resp:
                faults = await resp.json()
        assert faults["error_rates"] == {"503": 1.0}
        assert faults["seed"] == 1
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) is not None


async def test_a_bad_flag_is_a_clear_error() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "sandbox",
        "--port",
        str(free_port()),
        "--drop-rate",
        "2",
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"drop_rate must be a number from 0 to 1" in stderr
