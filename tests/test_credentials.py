"""Credentials per account: named credentials in RELAY_CONFIG (values also from the
environment or `_FILE`), one client each, and a 401 that holds only its own lanes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.config import default_mapping_path, load_settings
from relay.errors import ConfigError
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, uncommitted_events, wait_for
from tests.sandbox_fixtures import CREDENTIALS
from tests.sandbox_fixtures import web_event_for as event

AGENCY = """
[delivery_credentials.agency]
accounts = ["18ce55ab3cd"]
consumer_key = "{key}"
access_token = "{token}"
access_token_secret = "{token_secret}"
"""


def mapping_with_agency(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.toml"
    agency = AGENCY.format(
        key=CREDENTIALS["consumer_key"],
        token=CREDENTIALS["access_token"],
        token_secret=CREDENTIALS["access_token_secret"],
    )
    path.write_text(default_mapping_path().read_text() + agency)
    return path


def test_named_credentials_take_their_secrets_from_the_environment_or_files(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    env = {
        "RELAY_CONFIG": str(mapping_with_agency(tmp_path)),
        "RELAY_CREDENTIALS_AGENCY_CONSUMER_SECRET_FILE": str(secret_file),
        "RELAY_CREDENTIALS_AGENCY_ACCESS_TOKEN": "token-from-env",
    }
    (named,) = load_settings(env).mapping.named_credentials
    assert named.name == "agency" and named.accounts == ("18ce55ab3cd",)
    assert named.credentials.consumer_secret.reveal() == "from-a-file"
    assert named.credentials.access_token == "token-from-env"
    assert "from-a-file" not in repr(named)
    with pytest.raises(ConfigError, match="agency lacks a value"):
        load_settings({"RELAY_CONFIG": env["RELAY_CONFIG"]})  # no consumer secret anywhere


async def test_a_rejected_credential_holds_only_its_accounts_with_one_probe(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    secret_file = tmp_path / "wrong-secret"
    secret_file.write_text("not-the-secret")
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_CONFIG=str(mapping_with_agency(tmp_path)),
        RELAY_CREDENTIALS_AGENCY_CONSUMER_SECRET_FILE=str(secret_file),
        RELAY_SHUTDOWN_GRACE_S=1,
    )
    good = [event("o8z6j", "o87ne", i) for i in range(40)]  # default credentials
    held = [event("p1a2b", "p9x01", i) for i in range(25)]  # account 18ce55ab3cd: agency
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), [*good, *held])
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(
            lambda: (
                worker.metrics.total("relay_events_delivered") >= len(good)
                and "agency" in worker.readiness()[1]
            ),
            60,
            "the default credential's events and the agency's 401",
        )
        ready, reason = worker.readiness()
        assert not ready and "agency" in reason and "not-the-secret" not in reason
    finally:
        stop.set()
        await task
    metrics = worker.metrics
    assert metrics.total("relay_events_delivered") == len(good)
    assert metrics.total("relay_events_dead_lettered") == 0
    rejected = metrics.registry.get_sample_value(
        "relay_api_requests_total", {"endpoint": "measurement/conversions", "status": "401"}
    )
    assert rejected == 1, "one probe per credential, not a request per event or lane"
    left = await uncommitted_events(
        kafka_bootstrap, settings.deliver_group, settings.outbound_topic
    )
    assert left >= len(held)


async def test_a_refused_pixel_is_dead_lettered_once_then_not_called_until_its_probe(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url, RELAY_SHUTDOWN_GRACE_S=1)
    topic = next(iter(settings.inputs))
    refused = [event("s7g8h", "s1w01", i) for i in range(20)]  # not the token's account
    await produce_values(kafka_bootstrap, topic, refused)
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    metrics = worker.metrics

    def forbidden() -> float:
        value = metrics.registry.get_sample_value(
            "relay_api_requests_total", {"endpoint": "measurement/conversions", "status": "403"}
        )
        return value or 0.0

    try:
        await wait_for(lambda: metrics.total("relay_events_dead_lettered") > 0, 60, "the 403")
        dead_after_first = metrics.total("relay_events_dead_lettered")
        assert forbidden() == 1
        later = [event("s7g8h", "s1w01", 100 + i) for i in range(10)]
        others = [event("o8z6j", "o87ne", i) for i in range(30)]
        await produce_values(kafka_bootstrap, topic, [*later, *others])
        await wait_for(lambda: metrics.total("relay_events_delivered") >= 30, 60, "the others")
        # The refused pixel's later events wait for the probe: X is not called for them.
        assert forbidden() == 1
        assert metrics.total("relay_events_dead_lettered") == dead_after_first
        held = metrics.registry.get_sample_value("relay_held_targets")
        assert held == 1
        holds = metrics.registry.get_sample_value(
            "relay_target_holds_total", {"kind": "web", "code": "ACCOUNT_NOT_FOUND"}
        )
        assert holds == 1
    finally:
        stop.set()
        await task
