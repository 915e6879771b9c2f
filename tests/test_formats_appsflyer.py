from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from relay.config import App
from relay.formats.appsflyer import adapt_appsflyer
from tests.app_formats import (
    ADID,
    CTX,
    IDFA,
    KEY,
    MAPPING,
    ZERO,
    dropped,
    independent_hmac,
    invalid,
    no_raw_device_id,
)


def ios(**fields: Any) -> dict[str, Any]:
    """The AppsFlyer example of event-formats.md (raw data V5 names)."""
    record: dict[str, Any] = {
        "app_id": "id333903271",
        "platform": "ios",
        "idfa": IDFA,
        "advertising_id": None,
        "event_name": "af_purchase",
        "event_time": "2026-11-20 10:00:00.123",
        "event_value": '{"af_revenue":"4.99","af_currency":"EUR","af_quantity":"1"}',
        "event_revenue": "4.99",
        "event_revenue_currency": "EUR",
        "ip": "192.133.78.1",
        "appsflyer_id": "1700000000000-1234567",
        "is_lat": False,
    }
    record.update(fields)
    return record


def android(**fields: Any) -> dict[str, Any]:
    record = ios(
        app_id="com.vine.android",
        platform="android",
        idfa="",
        advertising_id=ADID,
        event_name="af_level_achieved",
        event_time="2026-11-21 08:30:05",
        event_value=orjson.dumps({"af_level": "7", "af_payment_info_available": "true"}).decode(),
        event_revenue=None,
        event_revenue_currency=None,
        ip="2001:db8::1",
    )
    record.update(fields)
    return record


def test_ios_purchase() -> None:
    event = adapt_appsflyer(ios(), CTX)
    assert (event.kind, event.budget_key, event.target) == ("app", "18ce54d4x5t", "333903271")
    assert event.payload == {
        "app_id": "333903271",  # the `id` prefix stripped
        "os_type": "IOS",
        "hashed_device_id": independent_hmac(IDFA),
        "conversion_type": "PURCHASE",
        "conversion_time": "2026-11-20T10:00:00.123Z",  # space, no zone, read as UTC
        "device_ip_address": "192.133.78.1",
        "number_items": 1,  # af_quantity was the string "1"
        "price_currency": "EUR",
        "price_micro": 4_990_000,
    }
    assert event.ledger_key == "1700000000000-1234567\x1f2026-11-20 10:00:00.123\x1faf_purchase"
    assert no_raw_device_id(event, IDFA)


def test_android_level_from_event_value_string_numbers() -> None:
    event = adapt_appsflyer(android(), CTX)
    assert event.payload == {
        "app_id": "com.vine.android",
        "os_type": "ANDROID",
        "hashed_device_id": independent_hmac(ADID),
        "conversion_type": "LEVEL_ACHIEVED",
        "conversion_time": "2026-11-21T08:30:05.000Z",
        "device_ip_address": "2001:db8::1",
        "level": 7,
        "user_payment_info": True,
    }


def test_revenue_from_event_value_when_event_revenue_is_absent() -> None:
    record = ios(
        event_revenue=None,
        event_revenue_currency="",
        event_value='{"af_revenue":"6","af_currency":"usd","af_quantity":"2"}',
    )
    payload = adapt_appsflyer(record, CTX).payload
    assert (payload["price_micro"], payload["price_currency"], payload["number_items"]) == (
        6_000_000,
        "USD",
        2,
    )


def test_install_without_event_value() -> None:
    record = ios(event_name="install", event_value="", event_revenue=None, appsflyer_id=None)
    del record["ip"]
    event = adapt_appsflyer(record, CTX)
    assert event.payload["conversion_type"] == "INSTALL"
    assert "price_micro" not in event.payload and "price_currency" not in event.payload
    assert event.ledger_key == ""


@pytest.mark.parametrize("name", ["re-engagement", "re-attribution", "af_re_engage"])
def test_re_engagement_names(name: str) -> None:
    assert adapt_appsflyer(ios(event_name=name), CTX).payload["conversion_type"] == "RE_ENGAGE"


def test_per_app_event_map_overrides_the_defaults() -> None:
    app = replace(
        MAPPING.apps["333903271"],
        event_maps={"appsflyer": {"level_up": "LEVEL_ACHIEVED", "af_purchase": ""}},
    )
    ctx = replace(CTX, mapping=replace(MAPPING, apps={**MAPPING.apps, app.id: app}))
    assert adapt_appsflyer(ios(event_name="level_up"), ctx).payload["conversion_type"] == (
        "LEVEL_ACHIEVED"
    )
    assert dropped(adapt_appsflyer, ios(), ctx) == "not_a_conversion"
    assert isinstance(app, App)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"is_lat": True}, "limit_ad_tracking"),
        ({"is_lat": "true", "idfa": "garbage"}, "limit_ad_tracking"),
        ({"idfa": ZERO}, "zero_device_id"),
        ({"idfa": None}, "no_device_id"),
        ({"event_name": "af_opened_from_push_notification"}, "not_a_conversion"),
        ({"event_name": "af_location_changed"}, "not_a_conversion"),
        ({"event_name": "af_ad_view", "idfa": "garbage"}, "not_a_conversion"),
        ({"event_name": "my_custom_event"}, "unmapped_event"),
    ],
)
def test_drops(fields: dict[str, Any], reason: str) -> None:
    assert dropped(adapt_appsflyer, ios(**fields)) == reason


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event_value": "{not json"}, "event_value"),
        ({"event_value": "[1]"}, "event_value"),
        ({"event_value": '{"af_quantity":"two"}'}, "event_value.af_quantity"),
        ({"event_revenue": "N/A"}, "event_revenue"),
        ({"event_revenue_currency": "EURO"}, "event_revenue_currency"),
        ({"event_time": "20/11/2026 10:00"}, "event_time"),
        ({"event_time": None}, "event_time"),
        ({"platform": "windows"}, "platform"),
        ({"app_id": "id 333903271"}, "app_id"),
        ({"idfa": "not-an-idfa"}, "idfa"),
        ({"event_name": None}, "event_name"),
        ({"is_lat": "perhaps"}, "is_lat"),
        ({"ip": "localhost"}, "ip"),
    ],
)
def test_invalid(fields: dict[str, Any], field: str) -> None:
    assert invalid(adapt_appsflyer, ios(**fields)).field == field


def test_a_redacted_dead_letter_redriven_after_a_fix_hashes_the_same() -> None:
    from relay.normalize.device_ids import redact_device_ids

    broken = orjson.dumps(ios(event_time="20/11/2026 10:00"))
    dead_letter = orjson.loads(redact_device_ids(broken, KEY, "as_received"))
    assert IDFA not in str(dead_letter)
    fixed = {**dead_letter, "event_time": "2026-11-20 10:00:00.123"}
    assert adapt_appsflyer(fixed, CTX).payload == adapt_appsflyer(ios(), CTX).payload
