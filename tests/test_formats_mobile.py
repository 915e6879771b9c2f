from __future__ import annotations

from typing import Any

import pytest

from relay.formats.base import NormalizeContext
from relay.formats.mobile import adapt_mobile
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


def example(**fields: Any) -> dict[str, Any]:
    """The canonical mobile event of event-formats.md."""
    record: dict[str, Any] = {
        "account_id": "18ce54d4x5t",
        "app_id": "333903271",
        "os_type": "ios",
        "device_id": IDFA,
        "hashed_device_id": None,
        "conversion_type": "PURCHASE",
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "click_window": None,
        "view_through_window": None,
        "price_micro": None,
        "revenue": "4.99",
        "currency": "EUR",
        "number_items": 1,
        "level": None,
        "device_ip_address": "192.133.78.1",
        "user_payment_info": True,
        "non_twitter_engagement_time": None,
        "non_twitter_engagement_type": None,
        "limit_ad_tracking": False,
    }
    record.update(fields)
    return record


def test_canonical_example() -> None:
    event = adapt_mobile(example(), CTX)
    assert (event.kind, event.budget_key, event.target, event.ledger_key) == (
        "app",
        "18ce54d4x5t",
        "333903271",
        "",
    )
    assert event.payload == {
        "app_id": "333903271",
        "os_type": "IOS",
        "hashed_device_id": independent_hmac(IDFA),
        "conversion_type": "PURCHASE",
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "device_ip_address": "192.133.78.1",
        "number_items": 1,
        "price_currency": "EUR",
        "price_micro": 4_990_000,
        "user_payment_info": True,
    }
    assert no_raw_device_id(event, IDFA)


def test_android_adid_and_every_optional_parameter() -> None:
    record = example(
        app_id="com.vine.android",
        os_type="Android",
        device_id=ADID,
        conversion_type="level_achieved",
        conversion_time=1763632800123,
        click_window=30,
        view_through_window="7",
        revenue=None,
        price_micro=123450000,
        price_currency="jpy",
        level="12",
        non_twitter_engagement_time="2026-11-19T10:00:00+02:00",
        non_twitter_engagement_type="click",
        user_payment_info="false",
        event_id="evt-1",
    )
    event = adapt_mobile(record, CTX)
    assert event.payload == {
        "app_id": "com.vine.android",
        "os_type": "ANDROID",
        "hashed_device_id": independent_hmac(ADID),
        "conversion_type": "LEVEL_ACHIEVED",
        "conversion_time": "2025-11-20T10:00:00.123Z",
        "click_window": 30,
        "view_through_window": 7,
        "device_ip_address": "192.133.78.1",
        "level": 12,
        "number_items": 1,
        "non_twitter_engagement_time": "2026-11-19T08:00:00.000Z",
        "non_twitter_engagement_type": "CLICK",
        "price_currency": "JPY",
        "price_micro": 123450000,
        "user_payment_info": False,
    }
    assert event.ledger_key == "evt-1"


@pytest.mark.parametrize(
    ("revenue", "micros"),
    [("4.99", 4_990_000), (0.1, 100_000), ("1e3", 1_000_000_000), ("0.0000005", 0), (7, 7_000_000)],
)
def test_revenue_is_exact_micro_units(revenue: object, micros: int) -> None:
    assert adapt_mobile(example(revenue=revenue), CTX).payload["price_micro"] == micros


def test_unmapped_app_uses_the_given_account_else_the_app_id() -> None:
    record = example(app_id="987654321", account_id=None)
    event = adapt_mobile(record, CTX)
    assert (event.budget_key, event.target) == ("987654321", "987654321")
    assert adapt_mobile(example(app_id="987654321", account_id="18ce55ab3cd"), CTX).budget_key == (
        "18ce55ab3cd"
    )


def test_pre_hashed_device_id_passes_through_and_extra_ids_when_enabled() -> None:
    event = adapt_mobile(example(device_id=None, hashed_device_id="ABCD1234XYZ"), CTX)
    assert event.payload["hashed_device_id"] == "ABCD1234XYZ"
    assert "extra_device_ids" not in event.payload
    extra = NormalizeContext(mapping=MAPPING, device_id_hmac_key=KEY, extra_device_ids=True)
    assert len(adapt_mobile(example(), extra).payload["extra_device_ids"]) == 64


def test_device_id_case_setting() -> None:
    lower = NormalizeContext(mapping=MAPPING, device_id_hmac_key=KEY, device_id_case="lower")
    assert adapt_mobile(example(), lower).payload["hashed_device_id"] == independent_hmac(
        IDFA.lower()
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"limit_ad_tracking": True}, "limit_ad_tracking"),
        ({"limit_ad_tracking": "yes", "device_id": "garbage"}, "limit_ad_tracking"),
        ({"device_id": ZERO}, "zero_device_id"),
    ],
)
def test_drops(fields: dict[str, Any], reason: str) -> None:
    assert dropped(adapt_mobile, example(**fields)) == reason


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"device_id": None}, "device_id"),
        ({"device_id": None, "hashed_device_id": IDFA}, "hashed_device_id"),
        ({"device_id": "not-an-idfa"}, "device_id"),
        ({"os_type": "windows"}, "os_type"),
        ({"app_id": "has spaces"}, "app_id"),
        ({"os_type": "android"}, "os_type"),  # the mapping says 333903271 is an iOS app
        ({"account_id": "18ce552mlaq"}, "account_id"),
        ({"conversion_type": "BUY"}, "conversion_type"),
        ({"conversion_time": "2026-11-20 10:00:00"}, "conversion_time"),
        ({"click_window": 3}, "click_window"),
        ({"click_window": 1, "view_through_window": 7}, "view_through_window"),
        ({"revenue": "-1"}, "revenue"),
        ({"price_micro": 1.5}, "price_micro"),
        ({"currency": "XYZ"}, "currency"),
        ({"number_items": 0}, "number_items"),
        ({"device_ip_address": "999.1.1.1"}, "device_ip_address"),
        ({"non_twitter_engagement_type": "TOUCH"}, "non_twitter_engagement_type"),
        ({"user_payment_info": "maybe"}, "user_payment_info"),
    ],
)
def test_invalid(fields: dict[str, Any], field: str) -> None:
    err = invalid(adapt_mobile, example(**fields))
    assert err.field == field
    assert IDFA not in err.message


def test_not_an_object() -> None:
    assert invalid(adapt_mobile, [example()]).message == "event must be a JSON object"
