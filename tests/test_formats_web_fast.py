"""The web adapter's hot path gives what the field-by-field rule gives, on random records.

Each field takes one of its variants at random (absent, null, blank, valid, padded, invalid,
another JSON type), so that every branch of both paths is met, the unusual ones included.
"""

from __future__ import annotations

import random
from typing import Any

from relay.config import default_mapping_path, load_mapping
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import NormalizeContext, OutboundEvent
from relay.formats.web import adapt_web, adapt_web_checked
from relay.normalize.identifiers import sha256_hex
from relay.observability.coverage import identifier_set

MAPPING = load_mapping(default_mapping_path())
ABSENT = object()

COMMON: list[Any] = [ABSENT, None, "", "   ", 7, True, False, 0, [], {}, [1], {"a": 1}]
VARIANTS: dict[str, list[Any]] = {
    "pixel_id": ["o8z6j", " o8z6j ", "nopix", "bad id!", "x" * 70],
    "account_id": ["18ce552mlaq", " 18ce552mlaq", "18ce54d4x5t", "bad-acct"],
    "event_id": ["o87ne", "tw-o8z6j-o87ne", "tw-other-o87ne", "zzzzz", " o87ne "],
    "conversion_time": [
        "2022-02-18T01:14:00.603Z",
        "2022-02-18T01:14:00Z",
        "2022-02-18T01:14:00.603+02:00",
        "2022-02-18T01:14:00",
        "2022-02-30T01:14:00.603Z",
        "1645146840603",
        1645146840603,
        1645146840603.0,
        1.5,
        "yesterday",
    ],
    "conversion_id": ["c-1", " c-2 ", 42, 4.5, "x" * 65],
    "email": ["  Test@Example.com ", "a@b.c", sha256_hex("x").upper(), "\u00c9mile@example.com"],
    "hashed_email": [sha256_hex("e"), " " + sha256_hex("f").upper() + " ", "nothex"],
    "phone": ["+1 (123) 456-7890", "+44 20 7946 0958", "020 7946 0958", "+1 12", "abc", "+" * 80],
    "hashed_phone_number": [sha256_hex("p"), "short"],
    "twclid": ["23opevjt88psuo13lu8d020qkn", "  t1  "],
    "ip_address": ["1.0.0.0", " 2001:db8::1 "],
    "user_agent": ["Mozilla/5.0 ...", "  UA  "],
    "value": ["20.00", "0.5", 100.99, 3, "-1", "1e3", "abc", "NaN", float("inf")],
    "price_currency": ["usd", " EUR ", "xyz"],
    "currency": ["gbp", "bad"],
    "number_items": [3, 3.0, 0, -2, "3", 2**40],
    "description": ["Pet supplies", "  "],
    "contents": [[{"content_id": "1", "num_items": 2}], [{}], ["x"], [{"content_price": -1}]],
    "consent": [{"opt_out": False}, {"opt_out": True}, {"opt_out": 0}, {}, "yes"],
    "limit_ad_tracking": [False, True, 1, "false"],
}
REQUIRED = {"pixel_id", "event_id", "conversion_time"}


def random_record(rng: random.Random) -> Any:
    if rng.random() < 0.01:
        return rng.choice([[], "text", 3, None])
    record: dict[str, Any] = {}
    for name, own in VARIANTS.items():
        # Mostly the first (valid) variant or absent, so that most records get far enough
        # to meet the later fields; now and then anything.
        roll = rng.random()
        if roll < (0.85 if name in REQUIRED else 0.4):
            value: Any = own[0]
        elif roll < 0.9 and name not in REQUIRED:
            continue
        elif roll < 0.97:
            value = rng.choice(own)
        else:
            value = rng.choice(COMMON)
        if value is not ABSENT:
            record[name] = value
    return record


def outcome(adapter: Any, record: Any, ctx: NormalizeContext) -> Any:
    try:
        event: OutboundEvent = adapter(record, ctx)
    except InvalidEvent as bad:
        return ("invalid", bad.message, bad.field, bad.error_class)
    except DroppedEvent as drop:
        return ("dropped", drop.reason)
    if event.identifiers is not None:  # the label the adapter knew is the payload's
        assert event.identifiers == identifier_set("web", event.payload)
    return ("event", event.kind, event.budget_key, event.target, event.payload, event.ledger_key)


def test_the_hot_path_matches_the_checked_adapter_on_random_records() -> None:
    rng = random.Random(20261201)
    kinds: dict[str, int] = {}
    for region in (None, "US", "GB"):
        fast_ctx = NormalizeContext(mapping=MAPPING, default_phone_region=region)
        checked_ctx = NormalizeContext(mapping=MAPPING, default_phone_region=region)
        for _ in range(4000):
            record = random_record(rng)
            expected = outcome(adapt_web_checked, record, checked_ctx)
            for _ in range(2):  # the second time from the remembered ids
                got = outcome(adapt_web, record, fast_ctx)
                assert got == expected, record
                assert repr(got) == repr(expected), record  # same payload key order too
            kinds[expected[0]] = kinds.get(expected[0], 0) + 1
    # Every outcome was met often: the comparison covered each.
    assert min(kinds.get(k, 0) for k in ("event", "invalid", "dropped")) > 300, kinds
