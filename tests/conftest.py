"""Shared fixtures: the embedded broker (one per test session), settings and a producer per
test."""

from __future__ import annotations

import asyncio
import gc
import io
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest

from relay.broker import broker_command, free_port, wait_until_answering
from relay.config import Settings, default_mapping_path, load_settings
from relay.kafka import BatchProducer, make_producer
from relay.sandbox.config import load_sandbox_config
from relay.sandbox.server import SandboxServer

TASK_DUMP_BEFORE_TIMEOUT_S = 15


def _dump_asyncio_tasks() -> None:
    """Print every task of every running event loop: pytest-timeout shows thread stacks
    only, where a hung async test is just a loop waiting in select()."""
    for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]:
        if not loop.is_running():
            continue

        def dump(loop: asyncio.AbstractEventLoop = loop) -> None:
            out = io.StringIO()
            tasks = asyncio.all_tasks(loop)
            print(f"\n==== {len(tasks)} asyncio tasks before the test timeout ====", file=out)
            for task in tasks:
                print(f"-- {task!r}", file=out)
                task.print_stack(limit=12, file=out)
            sys.stderr.write(out.getvalue())

        loop.call_soon_threadsafe(dump)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else item.config.getini("timeout")
    timer = None
    if timeout and float(timeout) > TASK_DUMP_BEFORE_TIMEOUT_S:
        timer = threading.Timer(float(timeout) - TASK_DUMP_BEFORE_TIMEOUT_S, _dump_asyncio_tasks)
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu, memory only) for the whole test session."""
    port = free_port()
    process = subprocess.Popen(
        broker_command("127.0.0.1", port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        asyncio.run(wait_until_answering(bootstrap, 30))
        yield bootstrap
    finally:
        end_popen(process)


def end_popen(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL when it has not exited within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh prefix per test, so tests sharing the broker never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[BatchProducer]:
    """A started BatchProducer on the session's broker."""
    raw = make_producer(kafka_bootstrap)
    await raw.start()
    try:
        yield BatchProducer(raw)
    finally:
        await raw.stop()


def make_settings(bootstrap: str, prefix: str, api_base_url: str, **env: Any) -> Settings:
    values = {
        "RELAY_KAFKA_BOOTSTRAP": bootstrap,
        "RELAY_API_BASE_URL": api_base_url,
        "RELAY_CONFIG": str(default_mapping_path()),
        "RELAY_TOPIC_PREFIX": prefix,
        "RELAY_INPUTS": f"{prefix}.input.web=web",
        "RELAY_LINGER_S": "0.05",
        "RELAY_ACCOUNT_LIMIT": "9000000",
        "RELAY_SHUTDOWN_GRACE_S": "5",
        "RELAY_KAFKA_SESSION_TIMEOUT_MS": "2000",
    }
    values.update({k: str(v) for k, v in env.items()})
    return load_settings(values)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The sandbox with its default configuration, in this test's event loop."""
    async with SandboxServer(load_sandbox_config(None, {})) as server:
        yield server


@pytest.fixture
def sandbox_process_url() -> Iterator[str]:
    """`relay sandbox` in a child process, for code that runs its own event loop."""
    import sys
    import time
    import urllib.request

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "--log-level", "WARNING", "sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_sandbox/config", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
