from __future__ import annotations

from typing import Any

import pytest

from relay.formats.adjust import adapt_adjust
from tests.app_formats import (
    ADID,
    CTX,
    IDFA,
    ZERO,
    dropped,
    independent_hmac,
    invalid,
    no_raw_device_id,
)


def android(**fields: Any) -> dict[str, Any]:
    """The Adjust example of event-formats.md, on the demo Android app and its token map."""
    record: dict[str, Any] = {
        "activity_kind": "event",
        "event": "bkrfgq",
        "event_name": "purchase_100_coins",
        "app_id": "com.vine.android",
        "os_name": "android",
        "gps_adid": ADID,
        "idfa": "",
        "adid": "9f2c4d7e1b3a5c6d8e0f1a2b3c4d5e6f",
        "created_at": "1763632800",
        "revenue_float": "3.99",
        "currency": "usd",
        "ip_address": "192.133.78.1",
    }
    record.update(fields)
    return record


def ios(**fields: Any) -> dict[str, Any]:
    record = android(event="p4r8ch", app_id="id333903271", os_name="ios", gps_adid="", idfa=IDFA)
    record.update(fields)
    return record


def test_android_purchase_through_the_token_map() -> None:
    event = adapt_adjust(android(), CTX)
    assert (event.budget_key, event.target) == ("18ce54d4x5t", "com.vine.android")
    assert event.payload == {
        "app_id": "com.vine.android",
        "os_type": "ANDROID",
        "hashed_device_id": independent_hmac(ADID),
        "conversion_type": "PURCHASE",
        "conversion_time": "2025-11-20T10:00:00.000Z",  # Unix seconds
        "device_ip_address": "192.133.78.1",
        "price_currency": "USD",  # lowercase in the callback
        "price_micro": 3_990_000,
    }
    assert event.ledger_key == "9f2c4d7e1b3a5c6d8e0f1a2b3c4d5e6f\x1f1763632800000\x1fbkrfgq"
    assert no_raw_device_id(event, ADID)


def test_ios_with_braces_in_keys_cents_and_milliseconds() -> None:
    braced = {"{" + key + "}": value for key, value in ios().items()}
    del braced["{revenue_float}"]
    braced.update({"{revenue}": "399", "{created_at_milli}": "1763632800123"})
    event = adapt_adjust(braced, CTX)
    assert event.payload["app_id"] == "333903271"
    assert event.payload["hashed_device_id"] == independent_hmac(IDFA)
    assert event.payload["conversion_time"] == "2025-11-20T10:00:00.123Z"
    assert event.payload["price_micro"] == 3_990_000  # 399 cents
    assert event.payload["conversion_type"] == "PURCHASE"


@pytest.mark.parametrize(
    ("kind", "conversion"),
    [
        ("install", "INSTALL"),
        ("reattribution", "RE_ENGAGE"),
        ("reattribution_reinstall", "RE_ENGAGE"),
    ],
)
def test_activity_kinds(kind: str, conversion: str) -> None:
    record = android(activity_kind=kind, event="", revenue_float=None, currency=None)
    event = adapt_adjust(record, CTX)
    assert event.payload["conversion_type"] == conversion
    assert "price_micro" not in event.payload


def test_tokens_are_per_app() -> None:
    # bkrfgq is the Android app's purchase token; the iOS app does not know it.
    assert dropped(adapt_adjust, ios(event="bkrfgq")) == "unmapped_event"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"activity_kind": "session"}, "not_a_conversion"),
        ({"activity_kind": "click", "gps_adid": "garbage"}, "not_a_conversion"),
        ({"activity_kind": "impression"}, "not_a_conversion"),
        ({"activity_kind": "uninstall"}, "not_a_conversion"),
        ({"activity_kind": "rejected_install"}, "not_a_conversion"),
        ({"event": "adv13w"}, "not_a_conversion"),  # mapped to "" in the demo defaults
        ({"event": "zzzzzz"}, "unmapped_event"),
        ({"tracking_limited": "1"}, "limit_ad_tracking"),
        ({"gps_adid": ZERO}, "zero_device_id"),
        ({"gps_adid": ""}, "no_device_id"),
    ],
)
def test_drops(fields: dict[str, Any], reason: str) -> None:
    assert dropped(adapt_adjust, android(**fields)) == reason


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"activity_kind": None}, "activity_kind"),
        ({"event": ""}, "event"),
        ({"os_name": "tizen"}, "os_name"),
        ({"created_at": "2025-11-20"}, "created_at"),
        ({"created_at": None}, "created_at"),
        ({"created_at_milli": "soon"}, "created_at_milli"),
        ({"revenue_float": "abc"}, "revenue_float"),
        ({"revenue_float": None, "revenue": "-5"}, "revenue"),
        ({"currency": "dollars"}, "currency"),
        ({"gps_adid": "not-an-adid"}, "gps_adid"),
    ],
)
def test_invalid(fields: dict[str, Any], field: str) -> None:
    assert invalid(adapt_adjust, android(**fields)).field == field
