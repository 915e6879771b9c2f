"""Start-up with default settings: `relay run` delivers soon after it starts, first and after a
restart, on the embedded broker (which holds each group join for half the session timeout)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest

from relay.broker import free_port
from relay.config import default_mapping_path, load_mapping, load_settings
from relay.kafka import (
    DEFAULT_SESSION_TIMEOUT_MS,
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SESSION_TIMEOUT_MS,
    group_options,
    session_timeout_for,
)
from relay.pipeline.worker import with_broker_defaults
from relay.tools.bench.startup import parse_timeline
from relay.tools.produce import generate_web, usable_pixels
from relay.tools.stack import sandbox_process, sandbox_stats
from tests.kafka_helpers import produce_values

# Not a speed claim (BENCHMARKS.md has the measured times): a bound the old start-up missed
# (7 s: a 5 s join with the 10 s session timeout; 20 s after a restart, the old member
# still in the group), with room for a busy machine.
FIRST_DELIVERY_DEADLINE_S: Final = 8.0


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with sandbox_process() as url:
        yield url


def default_env(bootstrap: str, prefix: str, sandbox_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return {  # the defaults, but for where things are and the budget
        **env,
        "RELAY_KAFKA_BOOTSTRAP": bootstrap,
        "RELAY_API_BASE_URL": sandbox_url,
        "RELAY_CONFIG": str(default_mapping_path()),
        "RELAY_TOPIC_PREFIX": prefix,
        "RELAY_INPUTS": f"{prefix}.input.web=web",
        "RELAY_ACCOUNT_LIMIT": "900000000",
        "RELAY_HTTP_PORT": str(free_port()),
    }


async def delivered_within(sandbox_url: str, at_least: int, started: float) -> float | None:
    """Seconds from `started` to the sandbox's `at_least`-th conversion, None past the bound."""
    while time.monotonic() - started < FIRST_DELIVERY_DEADLINE_S:
        if (await sandbox_stats(sandbox_url))["conversions_accepted"] >= at_least:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


async def test_first_delivery_soon_after_start_and_restart(
    kafka_bootstrap: str, topic_prefix: str, sandbox_url: str, tmp_path: Path
) -> None:
    pixels = usable_pixels(load_mapping(default_mapping_path()))
    env = default_env(kafka_bootstrap, topic_prefix, sandbox_url)
    values = [s.value for s in generate_web(20, pixels, seed=21)]
    for run, (batch, at_least) in enumerate(((values[:10], 1), (values[10:], 11))):
        await produce_values(kafka_bootstrap, f"{topic_prefix}.input.web", batch)
        started = time.monotonic()
        log_path = tmp_path / f"relay-{run}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "relay", "run", env=env, stderr=log
            )
        try:
            took = await delivered_within(sandbox_url, at_least, started)
            what = "the first start" if run == 0 else "a restart"
            assert took is not None, f"no delivery {FIRST_DELIVERY_DEADLINE_S}s after {what}"
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
            # Where the start's time went, in one line (read by `relay bench startup`).
            steps = parse_timeline(log_path.read_text())
            assert steps is not None, log_path.read_text()[-2000:]
            assert {"settings", "topics", "joining", "deliver joined", "first 2xx"} <= set(steps)
            assert steps["joining"] <= steps["deliver joined"] <= steps["first 2xx"]
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_session_timeout_is_chosen_by_the_broker_unless_set(kafka_bootstrap: str) -> None:
    assert await session_timeout_for(kafka_bootstrap, None) == EMBEDDED_SESSION_TIMEOUT_MS
    assert await session_timeout_for(kafka_bootstrap, 7000) == 7000
    assert group_options(None)["session_timeout_ms"] == DEFAULT_SESSION_TIMEOUT_MS
    assert group_options(2000)["heartbeat_interval_ms"] < 2000


async def test_the_fetch_wait_is_chosen_by_the_broker_unless_set(kafka_bootstrap: str) -> None:
    # The embedded broker hands a record to a waiting fetch only when it looks again.
    env = default_env(kafka_bootstrap, "fetchwait", "http://127.0.0.1:9")
    chosen = await with_broker_defaults(load_settings(env))
    assert chosen.kafka_fetch_max_wait_ms == EMBEDDED_FETCH_MAX_WAIT_MS
    assert chosen.kafka_session_timeout_ms == EMBEDDED_SESSION_TIMEOUT_MS
    configured = load_settings({**env, "RELAY_KAFKA_FETCH_MAX_WAIT_MS": "250"})
    assert (await with_broker_defaults(configured)).kafka_fetch_max_wait_ms == 250
    assert group_options(None, 20)["fetch_max_wait_ms"] == 20


# What `relay run` imports before its consumers start joining: the rest (the X client and
# aiohttp, the adapters and phonenumbers, YAML) is imported while the broker holds the joins.
BEFORE_JOINING = """
import sys
from relay.cli import build_parser
build_parser("run").parse_args(["run"])
import relay.pipeline.worker
from relay.config import load_settings
from relay.tools.config_check import raise_on_problems
raise_on_problems(load_settings())
heavy = {"aiohttp", "phonenumbers", "yaml"}
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


async def test_relay_run_starts_joining_before_the_heavy_imports(tmp_path: Path) -> None:
    env = default_env("127.0.0.1:9", "imports", "http://127.0.0.1:9")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BEFORE_JOINING,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip() == ""
