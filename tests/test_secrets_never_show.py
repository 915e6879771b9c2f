"""Every secret, set through `NAME_FILE` to a unique marker, never shows: not in logs, /metrics,
/readyz, dead letters, reprs, `--help`, `relay config check`/`dump`, nor in the errors raised
for a broken mapping file. The flow runs with X's 401 and 400 and with dead letters."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from relay.broker import free_port
from relay.config import SETTINGS, Settings, default_mapping_path, load_settings, read_document
from relay.errors import ConfigError
from relay.pipeline.ingest import Ingestor
from relay.pipeline.worker import Worker
from relay.sandbox.config import load_sandbox_config
from relay.sandbox.server import SandboxServer
from relay.tools.config_check import check
from relay.tools.produce import generate_web, usable_pixels
from tests.kafka_helpers import produce_values, read_all, wait_for

EVENTS = 120
INVALID = [b"{oops", b'{"pixel_id": "zzzzz", "email": "a@b.c"}']


def marker(name: str) -> str:
    return f"MARKER-{name}-{uuid.uuid4().hex}"


@pytest.fixture
def secrets(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    """An environment with every secret (and every identifier kept with them) as a file."""
    env: dict[str, str] = {}
    markers: list[str] = []
    for row in SETTINGS:
        if row.file_variable is None:
            continue
        value = marker(row.name)
        if row.name == "RELAY_DEVICE_ID_HMAC_KEY":
            value = base64.b64encode(value.encode()).decode()
        path = tmp_path / row.name.lower()
        path.write_text(value + "\n")
        env[row.file_variable] = str(path)
        markers.append(value)
    # Pixel tokens live in the mapping file.
    document = read_document(default_mapping_path())
    for pixel in document["pixels"]:
        pixel["pixel_token"] = marker(f"pixel-{pixel['id']}")
        markers.append(pixel["pixel_token"])
    document["credentials"]["consumer_secret"] = marker("file-consumer-secret")
    markers.append(document["credentials"]["consumer_secret"])
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(document))
    env["RELAY_CONFIG"] = str(mapping)
    yield env, markers


def leaks(text: str | bytes, markers: list[str]) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [m for m in markers if m.encode() in data]


def relay_command(*args: str, env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "relay", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


async def fetch(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return await answer.text()


async def set_faults(url: str, faults: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/_sandbox/faults", json=faults) as answer,
    ):
        assert answer.status == 200, await answer.text()


async def test_no_secret_shows_anywhere(
    kafka_bootstrap: str,
    topic_prefix: str,
    secrets: tuple[dict[str, str], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    env, markers = secrets
    caplog.set_level(logging.DEBUG)
    port = free_port()
    async with SandboxServer(load_sandbox_config(Path(env["RELAY_CONFIG"]), env)) as sandbox:
        env = {
            **env,
            "RELAY_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "RELAY_API_BASE_URL": sandbox.url,
            "RELAY_TOPIC_PREFIX": topic_prefix,
            "RELAY_INPUTS": f"{topic_prefix}.input.web=web",
            "RELAY_LINGER_S": "0.05",
            "RELAY_ACCOUNT_LIMIT": "9000000",
            "RELAY_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "RELAY_RETRY_BASE_S": "0.05",
            "RELAY_MAX_ATTEMPTS": "3",
            "RELAY_WEB_BATCH_SIZE": "20",
            "RELAY_HTTP_PORT": str(port),
            "RELAY_LOG_LEVEL": "DEBUG",
        }
        settings = load_settings(env)
        assert settings.credentials.consumer_secret.reveal().startswith("MARKER-")
        pixels = usable_pixels(settings.mapping)
        values = [s.value for s in generate_web(EVENTS, pixels, seed=11)]
        await produce_values(kafka_bootstrap, next(iter(settings.inputs)), [*INVALID, *values])
        shown: list[str | bytes] = [repr(settings), str(settings), repr(Ingestor(settings).ctx)]

        # X rejects the credentials: the worker is not ready, and says so without secrets.
        await set_faults(sandbox.url, {"error_rates": {"401": 1.0}})
        worker = Worker(settings, http_host="127.0.0.1")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await wait_for(
                lambda: task.done() or "401" in worker.readiness()[1], 60, "X's 401 to show"
            )
            shown += [await fetch(f"http://127.0.0.1:{port}/readyz")]
            shown += [await fetch(f"http://127.0.0.1:{port}/metrics")]
        finally:
            stop.set()
            await task

        # X answers 400 to some batches: they are split and the bad events dead-lettered.
        await set_faults(sandbox.url, {"error_rates": {"400": 0.5}, "seed": 5})
        worker = Worker(settings, http_host="127.0.0.1")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        metrics = worker.metrics

        def rejected() -> float:
            labels = {"stage": "deliver", "error_class": "rejected"}
            return (
                metrics.registry.get_sample_value("relay_events_dead_lettered_total", labels) or 0
            )

        def settled() -> bool:  # the invalid records were dead-lettered by the first run
            return metrics.total("relay_events_delivered") + rejected() >= EVENTS

        try:
            await wait_for(lambda: task.done() or settled(), 90, "every event to settle")
            shown += [await fetch(f"http://127.0.0.1:{port}/readyz")]
            shown += [await fetch(f"http://127.0.0.1:{port}/metrics")]
        finally:
            stop.set()
            await task
        assert metrics.total("relay_events_delivered") > 0
        assert rejected(), "no 400 reached the dead letters"

    dead = await read_all(kafka_bootstrap, settings.dlq_topic, int(rejected()) + len(INVALID))
    assert len(dead) == int(rejected()) + len(INVALID)
    for record in dead:
        shown += [record.value, *(name.encode() + value for name, value in record.headers)]
    shown += [caplog.text]
    assert "X rejects the credentials" in caplog.text  # the logs were captured

    # The command line: help, check (valid and invalid), dump, and a refused start.
    command_env = {**env, "RELAY_HTTP_PORT": "nan"}
    shown += [
        relay_command("run", "--help", env=env),
        relay_command("config", "check", env=env),
        relay_command("config", "check", env=command_env),
        relay_command("config", "dump", env=env),
        relay_command("run", env=command_env),
    ]
    assert "RELAY_CONSUMER_SECRET" in shown[-5]
    assert "RELAY_HTTP_PORT" in shown[-1]
    found = {m for text in shown for m in leaks(text, markers)}
    assert not found, f"{len(found)} secrets shown"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("yaml-syntax.yaml", "pixels:\n  - id: abc12\n    pixel_token: {secret}: [\n"),
        ("yaml-tab.yaml", "pixels:\n\t- pixel_token: {secret}\n"),
        ("no-account.yaml", "pixels:\n  - id: abc12\n    pixel_token: {secret}\n"),
        ("toml-syntax.toml", '[[pixels]]\nid = "abc12"\npixel_token = "{secret}\n'),
        ("toml-value.toml", "[[pixels]]\nid = abc12\npixel_token = {secret}\n"),
        ("wrong-types.yaml", "credentials: {secret}\n"),
        ("pixels-not-list.yaml", "pixels: {secret}\n"),
    ],
)
def test_errors_for_a_broken_mapping_file_never_quote_it(
    name: str, text: str, tmp_path: Path
) -> None:
    secret = marker("pixel-token")
    path = tmp_path / name
    path.write_text(text.replace("{secret}", secret))
    with pytest.raises(ConfigError) as caught:
        load_settings({"RELAY_CONFIG": str(path)})
    assert "RELAY_CONFIG" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
    report = check({"RELAY_CONFIG": str(path)})
    assert report.problems and secret not in str(report)


def test_settings_reprs_mask_every_secret_row() -> None:
    values: dict[str, str] = {}
    for row in SETTINGS:
        if row.secret and row.field:
            values[row.name] = base64.b64encode(b"k" * 16).decode() if "HMAC" in row.name else "s"
    settings: Settings = load_settings(values)
    for row in SETTINGS:
        if row.secret and row.field:
            assert getattr(settings, row.field).reveal(), row.name
    assert "'s'" not in repr(settings)
    assert base64.b64encode(b"k" * 16).decode() not in repr(settings)
