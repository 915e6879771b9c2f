"""App conversions delivered end to end: outbound app records on the real broker, the relay,
sandbox over HTTP (its app journal), and X's attribution on `<prefix>.attributions`."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from relay.config import Credentials, Secret
from relay.formats.base import OutboundEvent
from relay.pipeline import outbound
from relay.pipeline.deliver import DeliverStage
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from relay.xads.client import XAdsClient
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, read_all, wait_for
from tests.mact_fixtures import ANDROID_APP, APP_ACCOUNT, EXAMPLE_ATTRIBUTION, IOS_APP
from tests.sandbox_fixtures import CREDENTIALS

VIEWED_DEVICE = "lke1GZa3AseB343ZcCQq7svfHzLfuSqyYnE+Rf49MOI="  # a VIEW in defaults.toml
TAP_DEVICE = "tap-demo-device-0001"  # a click on the audience platform (TAP)
# Windows the test gives its tags: (app, os, conversion type) -> (click, view-through).
TAGS = {
    (IOS_APP, "IOS", "INSTALL"): (7, 0),
    (ANDROID_APP, "ANDROID", "PURCHASE"): (30, 7),
}


def client_for(url: str) -> XAdsClient:
    creds = Credentials(
        CREDENTIALS["consumer_key"],
        Secret(CREDENTIALS["consumer_secret"]),
        CREDENTIALS["access_token"],
        Secret(CREDENTIALS["access_token_secret"]),
    )
    return XAdsClient(url, creds)


async def tag_windows(url: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Create the test's tags where the account has none, then read what X holds (the
    first tag of each (app, os, type) is the one that counts)."""
    async with client_for(url) as client:
        existing = {
            (t["app_store_identifier"], t["os_type"], t["conversion_type"])
            async for t in client.app_event_tags.iterate(APP_ACCOUNT)
        }
        for (app, os_type, conversion_type), (click, view) in TAGS.items():
            if (app, os_type, conversion_type) not in existing:
                await client.app_event_tags.create(
                    APP_ACCOUNT,
                    app_store_identifier=app,
                    os_type=os_type,
                    conversion_type=conversion_type,
                    provider_app_event_id=f"{conversion_type.lower()}-1",
                    provider_app_event_name=conversion_type.lower(),
                    post_engagement_attribution_window=click,
                    post_view_attribution_window=view,
                )
        windows: dict[tuple[str, str, str], tuple[int, int]] = {}
        async for tag in client.app_event_tags.iterate(APP_ACCOUNT):
            key = (tag["app_store_identifier"], tag["os_type"], tag["conversion_type"])
            windows.setdefault(
                key,
                (tag["post_engagement_attribution_window"], tag["post_view_attribution_window"]),
            )
        return windows


def app_record(budget_key: str = APP_ACCOUNT, **params: Any) -> bytes:
    payload: dict[str, Any] = {
        "app_id": IOS_APP,
        "os_type": "IOS",
        "hashed_device_id": "ABCD1234XYZ",
        "conversion_type": "INSTALL",
        "conversion_time": "2013-04-16T07:00:00.123Z",
    }
    payload.update(params)
    event = OutboundEvent("app", budget_key, str(payload["app_id"]), payload)
    return outbound.encode(event)


async def app_journal(url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_sandbox/journal", params={"kind": "app"}) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        entries: list[dict[str, Any]] = body["conversions"]
        return entries


async def run_until(worker: Worker, condition: Any, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: task.done() or condition(), 60, what)
    finally:
        stop.set()
        await task


def deliver_stage(worker: Worker) -> DeliverStage:
    return next(s for s in worker.stages if isinstance(s, DeliverStage))


async def test_app_conversions_reach_x_with_tag_windows_and_attributions_come_back(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    windows = await tag_windows(sandbox.url)
    android = {"app_id": ANDROID_APP, "os_type": "ANDROID"}
    cases: dict[str, bytes] = {
        # X's documented example: attributed to the click one minute before.
        "example": app_record(),
        # A view two days before a purchase: attributed only within the view-through window.
        "viewed": app_record(
            **android,
            hashed_device_id=VIEWED_DEVICE,
            conversion_type="PURCHASE",
            conversion_time="2017-01-23T01:13:00.602Z",
            price_micro=4_990_000,
            price_currency="EUR",
        ),
        "tap": app_record(
            **android,
            hashed_device_id=TAP_DEVICE,
            conversion_type="INSTALL",
            conversion_time="2017-01-21T00:10:00.000Z",
        ),
        # Windows given by the input win, with the view-through cut down to the click window.
        "explicit": app_record(
            hashed_device_id="device-explicit", click_window=1, view_through_window=7
        ),
        # No account known for the app: budget key = app id, X's default windows.
        "unmapped": app_record(budget_key=IOS_APP, hashed_device_id="device-unmapped"),
    }
    many = [
        app_record(hashed_device_id=f"device-{i:03d}", conversion_type="SIGN_UP") for i in range(60)
    ]
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url)
    await produce_values(kafka_bootstrap, settings.outbound_topic, [*cases.values(), *many])
    total = len(cases) + len(many)
    # X answers each call after 50 ms: the account's conversions must overlap to keep up.
    async with aiohttp.ClientSession() as s:
        await s.post(f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 50})
    worker = Worker(settings, serve_http=False, stage="deliver")
    await run_until(
        worker, lambda: worker.metrics.total("relay_events_delivered") >= total, "delivery"
    )
    assert worker.metrics.total("relay_events_dead_lettered") == 0
    assert deliver_stage(worker).peak_lane_in_flight > 1, "one request at a time per account"

    journal = await app_journal(sandbox.url)
    assert len(journal) == total
    by_device = {e["params"]["hashed_device_id"]: e for e in journal}

    def sent_windows(device: str) -> tuple[int, int]:
        params = by_device[device]["params"]
        return int(params["click_window"]), int(params["view_through_window"])

    def expected_windows(app: str, os_type: str, conversion_type: str) -> tuple[int, int]:
        return windows.get((app, os_type, conversion_type), (14, 1))

    assert sent_windows("ABCD1234XYZ") == expected_windows(IOS_APP, "IOS", "INSTALL")
    assert sent_windows(VIEWED_DEVICE) == expected_windows(ANDROID_APP, "ANDROID", "PURCHASE")
    assert sent_windows("device-explicit") == (1, 1)
    assert sent_windows("device-unmapped") == (14, 1)
    assert sent_windows("device-007") == expected_windows(IOS_APP, "IOS", "SIGN_UP")
    viewed = by_device[VIEWED_DEVICE]["params"]
    assert viewed["price_micro"] == "4990000" and viewed["price_currency"] == "EUR"
    assert viewed["conversion_time"] == "2017-01-23T01:13:00.602Z"

    records = await read_all(kafka_bootstrap, settings.attributions_topic, total)
    assert len(records) == total
    values = {r.key.decode(): orjson.loads(r.value) for r in records if r.key is not None}
    example = values[f"{IOS_APP}:ABCD1234XYZ"]
    assert example["twitter_attribution"] == EXAMPLE_ATTRIBUTION
    assert example["tpn_attribution"] is None
    assert example["mode"] == "record"
    assert example["conversion"]["hashed_device_id"] == "ABCD1234XYZ"
    assert example["origin"]["topic"] == settings.outbound_topic
    assert example["origin"]["offset"] >= 0
    viewed_window = expected_windows(ANDROID_APP, "ANDROID", "PURCHASE")[1]
    viewed_claim = values[f"{ANDROID_APP}:{VIEWED_DEVICE}"]["twitter_attribution"]
    assert (viewed_claim is not None) == (viewed_window >= 2)  # the view was two days before
    tap = values[f"{ANDROID_APP}:{TAP_DEVICE}"]
    assert tap["twitter_attribution"] is None and tap["tpn_attribution"] is not None
    assert values[f"{IOS_APP}:device-007"]["twitter_attribution"] is None
    attributed = worker.metrics.registry.get_sample_value(
        "relay_attributions_total", {"outcome": "attributed"}
    )
    claimed = sum(1 for v in values.values() if v["twitter_attribution"] or v["tpn_attribution"])
    assert attributed == claimed >= 2


async def test_check_mode_asks_for_the_attribution_and_records_nothing(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, sandbox.url, RELAY_MOBILE_MODE="check")
    values = [app_record(), app_record(hashed_device_id="device-none")]
    await produce_values(kafka_bootstrap, settings.outbound_topic, values)
    worker = Worker(settings, serve_http=False, stage="deliver")
    await run_until(worker, lambda: worker.metrics.total("relay_events_delivered") >= 2, "checks")
    assert await app_journal(sandbox.url) == []
    records = await read_all(kafka_bootstrap, settings.attributions_topic, 2)
    by_key = {r.key: orjson.loads(r.value) for r in records}
    example = by_key[f"{IOS_APP}:ABCD1234XYZ".encode()]
    assert example["mode"] == "check"
    assert example["twitter_attribution"] == EXAMPLE_ATTRIBUTION
    assert by_key[f"{IOS_APP}:device-none".encode()]["twitter_attribution"] is None
