"""A worker whose broker goes away (a real `relay run` process and a real broker, hung with
SIGSTOP, then killed): few log lines, not ready while it is gone, delivery resumes when it
returns, and after RELAY_BROKER_LOST_EXIT_S a clean exit with its code, no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest

from relay.broker import broker_command, free_port, wait_until_answering
from relay.config import default_mapping_path, load_mapping
from relay.kafka import ensure_topics
from relay.pipeline.broker_watch import EXIT_BROKER_LOST
from relay.tools.produce import generate_web, usable_pixels
from relay.tools.stack import sandbox_process, sandbox_stats
from tests.kafka_helpers import produce_values, wait_for_async
from tests.test_worker_process import start_worker, worker_env

LOST_EXIT_S = 6


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with sandbox_process() as url:
        yield url


@pytest.fixture
async def own_broker() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A broker of this test alone: it is going to be hung and killed."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *broker_command("127.0.0.1", port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        await wait_until_answering(bootstrap, 30)
        yield process, bootstrap
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
        await process.wait()


async def readyz(port: int) -> int:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz") as resp,
        ):
            return resp.status
    except aiohttp.ClientError:
        return 0


async def test_worker_rides_out_a_lost_broker_then_exits_cleanly(
    own_broker: tuple[asyncio.subprocess.Process, str], topic_prefix: str, sandbox_url: str
) -> None:
    broker, bootstrap = own_broker
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    topic = f"{topic_prefix}.input.web"
    port = free_port()
    env = worker_env(bootstrap, topic_prefix, sandbox_url, port)
    env.update(RELAY_BROKER_LOST_EXIT_S=str(LOST_EXIT_S), RELAY_SHUTDOWN_GRACE_S="2")
    await ensure_topics(bootstrap, [topic])  # the relay never creates its inputs
    worker = await start_worker(env)
    lines: list[str] = []
    collector = asyncio.create_task(collect_stderr(worker, lines))

    async def accepted_at_least(n: int) -> bool:
        return bool((await sandbox_stats(sandbox_url))["conversions_accepted"] >= n)

    try:
        await produce_values(
            bootstrap, topic, [s.value for s in generate_web(500, pixels, seed=21)]
        )
        await wait_for_async(lambda: accepted_at_least(500), 60, "the first deliveries")
        assert await readyz(port) == 200

        broker.send_signal(signal.SIGSTOP)  # hung: connections accepted, nothing answered
        await wait_for_async(lambda: ready_is(port, 503), 10, "/readyz 503 with the broker hung")
        broker.send_signal(signal.SIGCONT)
        await wait_for_async(lambda: ready_is(port, 200), 30, "ready again")
        await produce_values(
            bootstrap, topic, [s.value for s in generate_web(500, pixels, seed=22)]
        )
        await wait_for_async(lambda: accepted_at_least(1000), 60, "delivery resuming by itself")

        broker.kill()
        await wait_for_async(lambda: ready_is(port, 503), 10, "/readyz 503 with the broker gone")
        code = await asyncio.wait_for(worker.wait(), LOST_EXIT_S + 60)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await asyncio.wait_for(collector, 10)
    text = "\n".join(lines)
    assert code == EXIT_BROKER_LOST, text
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert len(lines) <= 40, text
    assert sum("is unreachable" in line for line in lines) == 2, text
    assert sum("is back" in line for line in lines) == 1, text
    assert "exiting" in lines[-1], text


async def collect_stderr(worker: asyncio.subprocess.Process, lines: list[str]) -> None:
    """Every line the worker writes to stderr, into `lines`, until it closes stderr."""
    assert worker.stderr is not None
    async for raw in worker.stderr:
        lines.append(raw.decode(errors="replace").rstrip())


async def ready_is(port: int, expected: int) -> bool:
    return await readyz(port) == expected


async def test_sigterm_without_a_broker_is_a_clean_stop(
    own_broker: tuple[asyncio.subprocess.Process, str], topic_prefix: str, sandbox_url: str
) -> None:
    broker, bootstrap = own_broker
    port = free_port()
    env = worker_env(bootstrap, topic_prefix, sandbox_url, port)
    env.update(RELAY_SHUTDOWN_GRACE_S="2")
    await ensure_topics(bootstrap, [f"{topic_prefix}.input.web"])
    worker = await start_worker(env)
    lines: list[str] = []
    collector = asyncio.create_task(collect_stderr(worker, lines))
    try:
        await wait_for_async(lambda: ready_is(port, 200), 60, "ready")
        broker.kill()
        await wait_for_async(lambda: ready_is(port, 503), 10, "/readyz 503 with the broker gone")
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 30)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await asyncio.wait_for(collector, 10)
        print("\n".join(lines))
    text = "\n".join(lines)
    assert code == 0, text
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert "relay stopped" in text
