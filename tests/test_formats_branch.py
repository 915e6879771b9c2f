from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from relay.config import BranchApp
from relay.formats.branch import adapt_branch
from tests.app_formats import (
    ADID,
    CTX,
    IDFA,
    MAPPING,
    ZERO,
    dropped,
    independent_hmac,
    invalid,
    no_raw_device_id,
)


def ios(**fields: Any) -> dict[str, Any]:
    """A Branch webhook (event ontology) for a purchase on the demo iOS app."""
    record: dict[str, Any] = {
        "id": "1283704902340912384",
        "name": "PURCHASE",
        "timestamp": 1763632800123,
        "user_data": {
            "os": "IOS",
            "os_version": "17.1",
            "idfa": IDFA,
            "limit_ad_tracking": False,
            "ip": "192.133.78.1",
            "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
        },
        "event_data": {"revenue": 12.5, "currency": "gbp", "transaction_id": "t-991"},
        "content_items": [
            {"$sku": "gem-pack", "$product_name": "Gems", "$price": 6.25, "$quantity": 2},
            {"$sku": "bonus", "$quantity": "1"},
        ],
    }
    record.update(fields)
    return record


def android(**fields: Any) -> dict[str, Any]:
    record = ios(
        name="COMPLETE_REGISTRATION",
        user_data={"os": "android", "aaid": ADID, "ip": "203.0.113.9"},
        event_data=None,
        content_items=None,
    )
    record.update(fields)
    return record


def test_ios_purchase() -> None:
    event = adapt_branch(ios(), CTX)
    assert (event.budget_key, event.target, event.ledger_key) == (
        "18ce54d4x5t",
        "333903271",  # from [[branch_apps]], not from the payload
        "1283704902340912384",
    )
    assert event.payload == {
        "app_id": "333903271",
        "os_type": "IOS",
        "hashed_device_id": independent_hmac(IDFA),
        "conversion_type": "PURCHASE",
        "conversion_time": "2025-11-20T10:00:00.123Z",  # Unix milliseconds
        "device_ip_address": "192.133.78.1",
        "number_items": 3,
        "price_currency": "GBP",
        "price_micro": 12_500_000,
    }
    assert no_raw_device_id(event, IDFA)


@pytest.mark.parametrize("os", ["android", "Android", "ANDROID", " aNdRoId "])
def test_android_os_in_any_case(os: str) -> None:
    record = android(user_data={"os": os, "aaid": ADID})
    event = adapt_branch(record, CTX)
    assert event.payload["app_id"] == "com.vine.android"
    assert event.payload["os_type"] == "ANDROID"
    assert event.payload["conversion_type"] == "SIGN_UP"
    assert event.payload["hashed_device_id"] == independent_hmac(ADID)


def test_webhook_install_name_in_lower_case() -> None:
    event = adapt_branch(ios(name="install", event_data=None, content_items=None), CTX)
    assert event.payload["conversion_type"] == "INSTALL"
    assert "price_micro" not in event.payload


def test_several_branch_apps_need_branch_app_id() -> None:
    other = BranchApp("other-games", ios_app_id="111111111")
    apps = {**MAPPING.branch_apps, other.id: other}
    ctx = replace(CTX, mapping=replace(MAPPING, branch_apps=apps))
    assert invalid(adapt_branch, ios(), ctx).field == "branch_app_id"
    event = adapt_branch(ios(branch_app_id="other-games"), ctx)
    assert (event.target, event.budget_key) == ("111111111", "111111111")  # unmapped app
    err = invalid(adapt_branch, android(branch_app_id="other-games"), ctx)
    assert err.error_class == "unknown_app"
    assert invalid(adapt_branch, ios(branch_app_id="nope"), ctx).error_class == "unknown_app"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"user_data": {"os": "IOS", "idfa": IDFA, "limit_ad_tracking": True}},
            "limit_ad_tracking",
        ),
        ({"user_data": {"os": "IOS", "idfa": ZERO}}, "zero_device_id"),
        ({"user_data": {"os": "IOS", "idfv": IDFA}}, "no_device_id"),
        ({"name": "VIEW_CART"}, "not_a_conversion"),
        ({"name": "START_TRIAL"}, "not_a_conversion"),
        ({"name": "REINSTALL"}, "not_a_conversion"),
        ({"name": "VIDEO_STREAM"}, "not_a_conversion"),
        ({"name": "my_custom_event"}, "unmapped_event"),
    ],
)
def test_drops(fields: dict[str, Any], reason: str) -> None:
    assert dropped(adapt_branch, ios(**fields)) == reason


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": None}, "name"),
        ({"user_data": None}, "user_data.os"),
        ({"user_data": "ios"}, "user_data"),
        ({"user_data": {"os": "webos", "idfa": IDFA}}, "user_data.os"),
        (
            {"user_data": {"os": "IOS", "idfa": "F520B35A-4165-4426-98F6-64F12F47E9BZ"}},
            "user_data.idfa",
        ),
        ({"timestamp": "2025-11-20T10:00:00Z"}, "timestamp"),
        ({"timestamp": None}, "timestamp"),
        ({"event_data": {"revenue": "lots"}}, "event_data.revenue"),
        ({"event_data": {"revenue": 1, "currency": "??"}}, "event_data.currency"),
        ({"content_items": [{"$quantity": -1}]}, "content_items[0].$quantity"),
        ({"content_items": {"$quantity": 1}}, "content_items"),
    ],
)
def test_invalid(fields: dict[str, Any], field: str) -> None:
    assert invalid(adapt_branch, ios(**fields)).field == field
