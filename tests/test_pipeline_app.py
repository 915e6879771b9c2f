"""The ingest stage on the real broker for every app format (and Segment): MMP feeds in,
conversion_event parameters on `<prefix>.outbound`, no raw device id on any topic."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import orjson

from relay.config import default_mapping_path, load_mapping
from relay.normalize.device_ids import redact_device_ids
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.worker import Worker
from relay.tools.produce import generate
from tests.app_formats import ADID, IDFA, KEY, KEY_B64, ZERO, independent_hmac
from tests.conftest import make_settings
from tests.kafka_helpers import (
    committed_and_end,
    produce_values,
    read_all,
    read_outbound,
    wait_for,
)
from tests.test_formats_adjust import android as adjust_android
from tests.test_formats_appsflyer import ios as appsflyer_ios
from tests.test_formats_branch import android as branch_android
from tests.test_formats_mobile import example as mobile_ios

FORMATS = ("mobile", "appsflyer", "adjust", "branch", "segment")
GENERATED = 120
UUID = re.compile(rb"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
X_APP_PARAMS = {
    "app_id", "os_type", "hashed_device_id", "conversion_type", "conversion_time",
    "click_window", "view_through_window", "device_ip_address", "level", "number_items",
    "non_twitter_engagement_time", "non_twitter_engagement_type", "price_currency",
    "price_micro", "user_payment_info", "extra_device_ids",
}  # fmt: skip

# One known conversion per MMP format, with the parameters X must get for it.
KNOWN: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "mobile": (
        mobile_ios(),
        IDFA,
        {"app_id": "333903271", "os_type": "IOS", "conversion_type": "PURCHASE",
         "conversion_time": "2026-11-20T10:00:00.123Z", "price_micro": 4_990_000,
         "price_currency": "EUR", "number_items": 1, "device_ip_address": "192.133.78.1",
         "user_payment_info": True},
    ),
    "appsflyer": (
        appsflyer_ios(idfa=IDFA.lower()),
        IDFA.lower(),
        {"app_id": "333903271", "os_type": "IOS", "conversion_type": "PURCHASE",
         "conversion_time": "2026-11-20T10:00:00.123Z", "price_micro": 4_990_000,
         "price_currency": "EUR", "number_items": 1, "device_ip_address": "192.133.78.1"},
    ),
    "adjust": (
        {"{" + k + "}": v for k, v in adjust_android().items()},
        ADID,
        {"app_id": "com.vine.android", "os_type": "ANDROID", "conversion_type": "PURCHASE",
         "conversion_time": "2025-11-20T10:00:00.000Z", "price_micro": 3_990_000,
         "price_currency": "USD", "device_ip_address": "192.133.78.1"},
    ),
    "branch": (
        branch_android(user_data={"os": "Android", "aaid": ADID.upper(), "ip": "203.0.113.9"}),
        ADID.upper(),
        {"app_id": "com.vine.android", "os_type": "ANDROID", "conversion_type": "SIGN_UP",
         "conversion_time": "2025-11-20T10:00:00.123Z", "device_ip_address": "203.0.113.9"},
    ),
}  # fmt: skip


def drops(fmt: str) -> list[bytes]:
    """Records each app format must drop: limited ad tracking, zero id, no conversion."""
    if fmt == "mobile":
        records = [mobile_ios(limit_ad_tracking=True), mobile_ios(device_id=ZERO)]
    elif fmt == "appsflyer":
        records = [appsflyer_ios(is_lat="true"), appsflyer_ios(event_name="af_ad_click")]
    elif fmt == "adjust":
        records = [adjust_android(tracking_limited="1"), adjust_android(activity_kind="session")]
    elif fmt == "branch":
        records = [branch_android(user_data={"os": "ANDROID", "aaid": ZERO}),
                   branch_android(name="VIEW_CART")]  # fmt: skip
    else:
        return []
    return [orjson.dumps(r) for r in records]


async def test_every_app_format_reaches_outbound_hashed(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    inputs = {fmt: f"{topic_prefix}.in.{fmt}" for fmt in FORMATS}
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        "http://127.0.0.1:9",  # ingest only: X is never called
        RELAY_INPUTS=",".join(f"{topic}={fmt}" for fmt, topic in inputs.items()),
        RELAY_DEVICE_ID_HMAC_KEY=KEY_B64,
    )
    mapping = load_mapping(default_mapping_path())
    expected = {"deliver": 0, "drop": 0, "dead_letter": 0}
    broken: set[bytes] = set()
    sent: list[bytes] = []
    for index, (fmt, topic) in enumerate(inputs.items()):
        values = [orjson.dumps(KNOWN[fmt][0])] if fmt in KNOWN else []
        expected["deliver"] += len(values)
        values += drops(fmt)
        expected["drop"] += len(drops(fmt))
        for synthetic in generate(
            fmt, GENERATED, mapping, invalid_ratio=0.1, opt_out_ratio=0.15, seed=17 + index
        ):
            values.append(synthetic.value)
            expected[synthetic.expect] += 1
            if synthetic.expect == "dead_letter":
                # What the dead letter holds: app records with their device ids hashed.
                redacted = redact_device_ids(synthetic.value, KEY, "as_received")
                broken.add(synthetic.value if fmt == "segment" else redacted)
        await produce_values(kafka_bootstrap, topic, values)
        sent += values
    total = len(sent)

    worker = Worker(settings, stage="ingest", serve_http=False)

    def settled(m: Metrics) -> bool:
        done = sum(
            m.total(name)
            for name in (
                "relay_events_ingested",
                "relay_events_dropped",
                "relay_events_dead_lettered",
            )
        )
        return done >= total

    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: task.done() or settled(worker.metrics), 60, "every record to settle")
    finally:
        stop.set()
        await task
    metrics = worker.metrics
    assert metrics.total("relay_events_ingested") == expected["deliver"]
    assert metrics.total("relay_events_dropped") == expected["drop"]
    assert metrics.total("relay_events_dead_lettered") == expected["dead_letter"]
    for reason in ("limit_ad_tracking", "zero_device_id", "not_a_conversion"):
        assert (metrics.registry.get_sample_value("relay_events_dropped_total", {"reason": reason})
                or 0) >= 4, reason  # fmt: skip

    records, routed = await read_outbound(
        kafka_bootstrap, settings.outbound_topic, expected["deliver"]
    )
    assert len(routed) == expected["deliver"]
    apps = [r for r in routed if r.kind == "app"]
    assert len(apps) == expected["deliver"] - sum(r.kind == "web" for r in routed)
    assert sum(r.kind == "web" for r in routed) > 0  # segment
    assert sum(r.value.startswith(outbound.VERSION_TAG) for r in records) >= len(apps)
    by_record = [(r, route) for r in records for route in outbound.decode_all(r.value)]
    for record, route in by_record:
        assert record.key == route.budget_key.encode()
        if route.kind != "app":
            continue
        params = route.payload_dict()
        assert set(params) <= X_APP_PARAMS, set(params) - X_APP_PARAMS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", params["conversion_time"])
        assert len(base64.b64decode(params["hashed_device_id"])) == 32
        assert route.target == params["app_id"]
        assert route.budget_key == "18ce54d4x5t"  # both demo apps belong to it
    by_device = {r.payload_dict().get("hashed_device_id"): r for r in apps}
    for fmt, (_, device, params) in KNOWN.items():
        found = by_device[independent_hmac(device)]
        assert found.payload_dict() == {**params, "hashed_device_id": independent_hmac(device)}, fmt

    # No raw device id on any topic the ingest stage writes: the dead letters are the broken
    # inputs with each device id replaced by `hmac:<its hashed id>` (app formats only).
    raw_ids = {m.group().lower() for value in sent for m in UUID.finditer(value)}
    raw_ids.discard(ZERO.encode())
    assert len(raw_ids) > 300
    dead = await read_all(kafka_bootstrap, settings.dlq_topic, expected["dead_letter"])
    assert len(dead) == expected["dead_letter"]
    written = b"".join(
        r.value + (r.key or b"") + b"".join(v for _, v in r.headers) for r in (*records, *dead)
    ).lower()
    assert not [i for i in raw_ids if i in written]
    assert {r.value for r in dead} == broken
    assert {dict(r.headers)["relay.origin.topic"].decode() for r in dead} == set(inputs.values())
    assert sum(b'"hmac:' in r.value for r in dead) > 20

    for topic in inputs.values():
        offsets = await committed_and_end(kafka_bootstrap, settings.ingest_group, topic)
        assert offsets and all((c or 0) == end for c, end in offsets.values()), topic
