from __future__ import annotations

from typing import Any

import pytest

from relay.formats.base import NormalizeContext
from relay.formats.segment import adapt_segment
from relay.normalize.identifiers import sha256_hex
from tests.app_formats import MAPPING, dropped, invalid

CTX = NormalizeContext(mapping=MAPPING)
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"


def order(**fields: Any) -> dict[str, Any]:
    """A Segment `Order Completed` track call from the pet shop's site."""
    record: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "ajs-next-1763632800123-4e5f",
        "timestamp": "2026-11-20T10:00:00.123Z",
        "properties": {
            "pixel_id": "o8z6j",
            "order_id": "50314b8e9bcf000000000000",
            "total": 27.50,
            "revenue": "25.00",
            "currency": "eur",
            "products": [
                {"product_id": "507f1f77", "sku": "45790-32", "name": "Blanket",
                 "category": "Pet supplies", "price": 19, "quantity": 1},
                {"sku": "46493-32", "name": "Bowl", "price": "3.00", "quantity": 2},
            ],
        },
        "context": {
            "ip": "8.8.8.8",
            "userAgent": UA,
            "page": {"url": "https://shop.example/checkout?twclid=23opevjt88psuo13lu8d020qkn"},
            "traits": {"email": " Jane.Doe@Example.com ", "phone": "+44 20 7946 0958"},
        },
    }  # fmt: skip
    record.update(fields)
    return record


def test_order_completed() -> None:
    event = adapt_segment(order(), CTX)
    assert (event.kind, event.budget_key, event.target) == ("web", "18ce552mlaq", "o8z6j")
    assert event.payload == {
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "event_id": "o87ne",
        "identifiers": [
            {"twclid": "23opevjt88psuo13lu8d020qkn"},  # from the page URL
            {"hashed_email": sha256_hex("jane.doe@example.com")},
            {"hashed_phone_number": sha256_hex("+442079460958")},
            {"ip_address": "8.8.8.8", "user_agent": UA},
        ],
        "conversion_id": "50314b8e9bcf000000000000",  # order_id
        "value": "25.00",  # revenue before total
        "price_currency": "EUR",
        "number_items": 3,
        "contents": [
            {"content_id": "507f1f77", "content_name": "Blanket", "content_type": "Pet supplies",
             "content_price": "19", "num_items": 1},
            {"content_id": "46493-32", "content_name": "Bowl", "content_price": "3.00",
             "num_items": 2},
        ],
    }  # fmt: skip
    text = repr(event).lower()
    assert "jane" not in text and "7946" not in text


def test_message_id_when_no_order_id_and_twclid_from_properties() -> None:
    record = order(
        properties={"pixel_id": "o8z6j", "twclid": " tw-prop ", "value": 5},
        context={"page": {"url": "https://shop.example/?twclid=from-url"}},
    )
    payload = adapt_segment(record, CTX).payload
    assert payload["conversion_id"] == "ajs-next-1763632800123-4e5f"
    assert payload["identifiers"] == [{"twclid": "tw-prop"}]
    assert payload["value"] == "5"


def test_twclid_from_page_search() -> None:
    record = order(properties={"pixel_id": "o8z6j"}, context={"page": {"search": "?a=1&twclid=s1"}})
    assert adapt_segment(record, CTX).payload["identifiers"] == [{"twclid": "s1"}]


def test_ip_and_user_agent_alone_are_enough() -> None:
    record = order(context={"ip": "8.8.4.4", "userAgent": "UA"})
    assert adapt_segment(record, CTX).payload["identifiers"] == [
        {"ip_address": "8.8.4.4", "user_agent": "UA"}
    ]


def test_pixel_from_the_only_map_with_the_event() -> None:
    record = order(event="Signed Up", properties={})
    event = adapt_segment(record, CTX)
    assert (event.target, event.payload["event_id"]) == ("o8z6j", "o87ng")


def test_phone_without_country_code_uses_the_default_region() -> None:
    record = order(context={"traits": {"phone": "(415) 555-0132"}})
    assert invalid(adapt_segment, record).field == "context.traits.phone"
    us = NormalizeContext(mapping=MAPPING, default_phone_region="US")
    assert adapt_segment(record, us).payload["identifiers"] == [
        {"hashed_phone_number": sha256_hex("+14155550132")}
    ]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "page"}, "not_a_conversion"),
        ({"type": "identify", "event": None}, "not_a_conversion"),
        ({"event": "Cart Viewed"}, "unmapped_event"),
        ({"event": "Checkout Started"}, "unmapped_event"),  # mapped for p1a2b, not o8z6j
    ],
)
def test_drops(fields: dict[str, Any], reason: str) -> None:
    assert dropped(adapt_segment, order(**fields)) == reason


@pytest.mark.parametrize(
    ("fields", "field", "error_class"),
    [
        ({"event": None}, "event", "invalid_event"),
        ({"properties": {"pixel_id": "zzzzz"}}, "pixel_id", "unknown_pixel"),
        ({"properties": {}}, "pixel_id", "unknown_pixel"),  # Order Completed: several pixels
        ({"timestamp": "2026-11-20 10:00"}, "timestamp", "invalid_event"),
        ({"messageId": None, "properties": {"pixel_id": "o8z6j"}}, "messageId", "invalid_event"),
        ({"context": {}}, "identifiers", "invalid_event"),
        ({"context": {"ip": "1.1.1.1"}}, "identifiers", "invalid_event"),
        ({"context": {"traits": {"email": 42}}}, "context.traits.email", "invalid_event"),
        ({"properties": {"pixel_id": "o8z6j", "revenue": "-3"}}, "properties.revenue",
         "invalid_event"),
        ({"properties": {"pixel_id": "o8z6j", "products": [{"quantity": 0}]}},
         "properties.products[0].quantity", "invalid_event"),
        ({"properties": "x"}, "properties", "invalid_event"),
    ],
)  # fmt: skip
def test_invalid(fields: dict[str, Any], field: str, error_class: str) -> None:
    err = invalid(adapt_segment, order(**fields))
    assert (err.field, err.error_class) == (field, error_class)
