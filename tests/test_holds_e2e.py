"""Holds end to end (a Worker, the broker, the sandbox over HTTP, access withdrawn and given
back through `/_sandbox/access`): a credential X rejects (401) and a pixel X refuses (403)
stop only their own deliveries, X sees one probe per interval, and delivery resumes by itself
once X accepts again."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest

from relay.config import default_mapping_path
from relay.pipeline import outbound
from relay.pipeline.worker import Worker
from relay.sandbox.config import SandboxCredentials, load_sandbox_config
from relay.sandbox.server import SandboxServer
from relay.secret import Secret
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, read_all, wait_for, wait_for_async
from tests.sandbox_fixtures import control
from tests.sandbox_fixtures import web_event_for as event

PROBE_S: Final = 0.5
AGENCY_TOKEN: Final = "2000000002-agencyaccesstoken"
AGENCY_SECRET: Final = "agency-access-token-secret"
AGENCY_ACCOUNTS: Final = ("18ce55ab3cd", "18ce55ef7gh")  # pixels p1a2b and q3c4d
WEB_ENDPOINT: Final = "POST /12/measurement/conversions/{pixel_id}"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The sandbox knowing a second user token: an agency's, for two of the accounts."""
    config = load_sandbox_config(None, {})
    default = config.credentials[0]
    agency = SandboxCredentials(
        default.consumer_key,
        default.consumer_secret,
        AGENCY_TOKEN,
        Secret(AGENCY_SECRET),
        frozenset(AGENCY_ACCOUNTS),
    )
    config = dataclasses.replace(config, credentials=(default, agency))
    async with SandboxServer(config) as server:
        yield server


def agency_mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.toml"
    accounts = ", ".join(f'"{a}"' for a in AGENCY_ACCOUNTS)
    path.write_text(
        default_mapping_path().read_text()
        + f"""
[delivery_credentials.agency]
accounts = [{accounts}]
consumer_key = "relay-demo-consumer-key"
consumer_secret = "relay-demo-consumer-secret"
access_token = "{AGENCY_TOKEN}"
access_token_secret = "{AGENCY_SECRET}"
"""
    )
    return path


async def probes_are_an_interval_apart(count: Any, what: str) -> None:
    """Four requests counted by `count()` after one just came: at least three intervals."""
    first = await count()
    await wait_for_async(lambda: _above(count, first), 30, f"a {what} probe")
    started, base = time.monotonic(), await count()
    await wait_for_async(lambda: _above(count, base + 2), 60, f"three more {what} probes")
    # Spacing, not speed: under load the probes only come later.
    assert time.monotonic() - started >= 3 * PROBE_S * 0.9, f"{what}: more than one per interval"


async def _above(count: Any, value: int) -> bool:
    return bool(await count() > value)


async def test_a_revoked_credential_holds_only_its_accounts_then_resumes_by_itself(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    url = sandbox.url
    await control(url, "POST", "access", {"revoked_tokens": [AGENCY_TOKEN]})
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        url,
        RELAY_CONFIG=str(agency_mapping(tmp_path)),
        RELAY_HOLD_PROBE_S=PROBE_S,
        RELAY_SHUTDOWN_GRACE_S=1,
    )
    good = [event("o8z6j", "o87ne", i) for i in range(40)]  # the default credentials
    held = [event("p1a2b", "p9x01", i) for i in range(15)]  # the agency's accounts
    held += [event("q3c4d", "q7y01", i) for i in range(15)]
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), [*good, *held])
    worker = Worker(settings, serve_http=False)
    metrics = worker.metrics
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def agency_requests() -> int:
        by_token = (await control(url, "GET", "stats"))["requests_by_token"]
        return int(sum(by_token.get(AGENCY_TOKEN, {}).values()))

    try:
        await wait_for(
            lambda: (
                task.done()
                or (
                    metrics.total("relay_events_delivered") >= len(good)
                    and "agency" in worker.readiness()[1]
                )
            ),
            60,
            "the default credential's events, and the agency's 401",
        )
        assert metrics.total("relay_events_delivered") == len(good)
        # Two accounts of the agency, yet one probe per interval for its credential.
        await probes_are_an_interval_apart(agency_requests, "credential")
        stats = await control(url, "GET", "stats")
        assert set(stats["requests_by_token"][AGENCY_TOKEN]) == {"401"}
        assert metrics.total("relay_events_dead_lettered") == 0
        await control(url, "DELETE", "access")  # the agency's token works again
        await wait_for(
            lambda: task.done() or metrics.total("relay_events_delivered") >= len(good) + len(held),
            60,
            "the agency's events, once its credential works",
        )
        assert worker.readiness()[0], worker.readiness()[1]
    finally:
        stop.set()
        await task
    assert metrics.total("relay_events_delivered") == len(good) + len(held)
    assert metrics.total("relay_events_dead_lettered") == 0
    journal = (await control(url, "GET", "journal"))["total"]
    assert journal == len(good) + len(held)


async def test_a_refused_pixel_dead_letters_with_xs_code_then_only_probes_then_resumes(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    url = sandbox.url
    await control(url, "POST", "access", {"deny": {"pixels": {"p1a2b": 403}}})
    settings = make_settings(
        kafka_bootstrap, topic_prefix, url, RELAY_TARGET_PROBE_S=PROBE_S, RELAY_SHUTDOWN_GRACE_S=1
    )
    topic = next(iter(settings.inputs))
    refused = [event("p1a2b", "p9x01", i) for i in range(20)]
    await produce_values(kafka_bootstrap, topic, refused)
    worker = Worker(settings, serve_http=False)
    metrics = worker.metrics
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def refusals() -> int:
        requests = (await control(url, "GET", "stats"))["requests"].get(WEB_ENDPOINT, {})
        return int(requests.get("403", 0))

    try:
        await wait_for(
            lambda: task.done() or metrics.total("relay_events_dead_lettered") > 0, 60, "the 403"
        )
        later = [event("p1a2b", "p9x01", 100 + i) for i in range(30)]
        others = [event("o8z6j", "o87ne", i) for i in range(30)]
        await produce_values(kafka_bootstrap, topic, [*later, *others])
        await wait_for(
            lambda: task.done() or metrics.total("relay_events_delivered") >= len(others),
            60,
            "the other pixel's events, while the refused one is held",
        )
        # Afterwards X sees the probes only: one event each, one per interval.
        dead_before, refused_before = metrics.total("relay_events_dead_lettered"), await refusals()
        await probes_are_an_interval_apart(refusals, "target")
        probes = await refusals() - refused_before
        assert metrics.total("relay_events_dead_lettered") - dead_before <= probes + 1
        await control(url, "DELETE", "access")  # X takes the pixel again
        total = len(refused) + len(later) + len(others)
        await wait_for(
            lambda: (
                task.done()
                or metrics.total("relay_events_delivered")
                + metrics.total("relay_events_dead_lettered")
                >= total
            ),
            60,
            "the refused pixel's later events, once its probe passes",
        )
    finally:
        stop.set()
        await task
    dead = int(metrics.total("relay_events_dead_lettered"))
    assert metrics.total("relay_events_delivered") + dead == total
    assert dead < len(refused) + len(later), "delivery resumed for the pixel"
    records = await read_all(kafka_bootstrap, settings.dlq_topic, dead)
    assert len(records) == dead
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        assert (headers["relay.error.http_status"], headers["relay.error.api_code"]) == (
            "403",
            "ACCOUNT_NOT_FOUND",
        )
        assert outbound.decode(record.value).target == "p1a2b", "other pixels unaffected"
    journal = (await control(url, "GET", "journal", None))["conversions"]
    assert {e["pixel_id"] for e in journal} == {"o8z6j", "p1a2b"}
