"""The sandbox's fast paths give the verdicts of its full checks: on random valid and
invalid requests, whatever a fast path accepts the full checks accept the same way (and
what it declines, the full checks answer), and the usual well-formed requests do take the
fast path."""

from __future__ import annotations

import copy
import random
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from multidict import MultiDict

from relay.sandbox import oauth1
from relay.sandbox.config import DEDUP_WINDOW_S, SandboxPixel, load_sandbox_config
from relay.sandbox.mact_params import (
    EVENT_PARAMS,
    AppConversion,
    checked_app_conversion,
    usual_conversion,
)
from relay.sandbox.responses import XApiError
from relay.sandbox.state import SeenConversions
from relay.sandbox.validation import validate_web_request
from relay.sandbox.validation_fast import fast_dedup_keys

PIXEL_ID = "o8z6j"
HASH = "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"
CASES = 3000

# Values that are right somewhere and wrong elsewhere: each field gets any of them.
ODD_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\n",
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    -0.5,
    2**31,
    2**31 - 1,
    2**53,
    2**63,
    [],
    {},
    [{}],
    "20.00",
    "20.",
    ".5",
    "٢٠",
    "20\n",
    "1e3",
    "USD",
    "usd",
    "XXX",
    HASH,
    HASH.upper(),
    HASH[:-1],
    HASH + "0",
    HASH[:-1] + " ",
    HASH[:-1] + "g",
    HASH[:-1] + "٣",
    "2026-11-20T10:00:00.123Z",
    "2026-02-30T10:00:00.123Z",
    "2026-11-20T24:00:00.000Z",
    "2026-11-20T10:00:00.123Z\n",
    "2026-11-20T10:00:00Z",
    "o87ne",
    f"tw-{PIXEL_ID}-o87ne",
    f"tw-{PIXEL_ID}-",
    "nope",
    "x" * 100,
]
ODD_IDENTIFIERS: list[Any] = [
    [],
    [{}],
    {},
    "x",
    [None],
    [{"hashed_email": HASH, "twclid": "abc"}],
    [{"ip_address": "8.25.197.25", "user_agent": "curl"}],
    [{"ip_address": "8.25.197.25"}],
    [{"twclid": " "}],
    [{"twclid": "abc"}],
    [{"twclid": None}],
    [{"hashed_phone_number": HASH}],
    [{"hashed_email": ""}],
    [{"hashed_email": HASH}, {"twclid": "abc"}],
    [{"hashed_email": HASH}, {"hashed_phone_number": HASH[:-1]}],
    [{"email": HASH}],
    [{"hashed_email": HASH, "hashed_email2": HASH}],
    # What the relay sends, and near it.
    [{"hashed_email": HASH}, {"hashed_phone_number": HASH}, {"ip_address": "1.2.3.4"}],
    [{"hashed_email": HASH}, {"ip_address": "1.2.3.4", "user_agent": "a"}],
    [{"hashed_email": HASH}, {"ip_address": "2001:db8::1", "user_agent": "a"}],
    [{"ip_address": "2001:db8::1", "user_agent": "a"}],
    [{"ip_address": "::ffff:1.2.3.4", "user_agent": "a"}],
    [{"ip_address": " 1.2.3.4", "user_agent": "a"}],
    [{"ip_address": "1.2.3.4", "user_agent": " "}],
    [{"ip_address": "1.2.3.4"}, {"user_agent": "a"}],
    [{"ip_address": "1::2::3", "user_agent": "a"}],
    [{"ip_address": "01.2.3.4", "user_agent": "a"}],
    [{"ip_address": "1.2.3.4"}],
    [{"hashed_email": HASH, "ip_address": "1.2.3.4"}],
]  # fmt: skip
FIELDS = [
    "conversion_time", "event_id", "identifiers", "conversion_id", "value",
    "price_currency", "number_items", "description", "contents", "unknown_field",
]  # fmt: skip


@pytest.fixture(scope="module")
def pixel() -> SandboxPixel:
    return load_sandbox_config(None, {}).pixels[PIXEL_ID]


def _conversion(rng: random.Random, i: int) -> dict[str, Any]:
    conversion: dict[str, Any] = {
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "event_id": rng.choice(["o87ne", f"tw-{PIXEL_ID}-o87ne"]),
        "identifiers": [{rng.choice(["hashed_email", "hashed_phone_number"]): HASH}],
    }
    optional = {
        "conversion_id": f"c-{i}",
        "value": rng.choice(["20.00", "7", 3, 0]),
        "price_currency": rng.choice(["USD", "EUR", "JPY"]),
        "number_items": rng.randint(1, 9),
        "description": "a book",
        "contents": [{"content_id": "sku-1", "content_price": "5.00", "num_items": 2}],
    }
    for name, value in optional.items():
        if rng.random() < 0.7:
            conversion[name] = value
    return conversion


def _mutated(rng: random.Random, conversion: dict[str, Any]) -> dict[str, Any]:
    conversion = copy.deepcopy(conversion)
    name = rng.choice(FIELDS)
    roll = rng.random()
    if roll < 0.15:
        conversion.pop(name, None)
    elif name == "identifiers" and roll < 0.7:
        conversion[name] = copy.deepcopy(rng.choice(ODD_IDENTIFIERS))
    elif name == "contents" and roll < 0.7:
        content = {"content_id": "a", rng.choice(["content_price", "num_items", "x"]): None}
        content[rng.choice(list(content))] = rng.choice(ODD_VALUES)
        conversion[name] = [content]
    else:
        conversion[name] = rng.choice(ODD_VALUES)
    return conversion


def _body(rng: random.Random) -> bytes:
    count = rng.choice([1, 2, 5, 40])
    conversions: list[Any] = [_conversion(rng, i) for i in range(count)]
    if rng.random() < 0.6:
        at = rng.randrange(count)
        conversions[at] = _mutated(rng, conversions[at])
    if rng.random() < 0.1:
        conversions.append(copy.deepcopy(conversions[0]))  # a repeated conversion_id
    document: Any = {"conversions": conversions}
    roll = rng.random()
    if roll < 0.03:
        document = rng.choice([[], None, {"conversions": []}, {"conversions": None}, {}])
    elif roll < 0.06:
        document["extra"] = 1
    raw = orjson.dumps(document)
    roll = rng.random()
    if roll < 0.03:
        raw = raw[: rng.randrange(len(raw))]  # truncated
    elif roll < 0.06:  # a key given twice: the last one counts, in both parsers
        raw = raw.replace(b'"event_id":', b'"event_id":null,"event_id":', 1)
    elif roll < 0.08:
        raw = raw.replace(b'"conversion_time":', b'"conversion_time":"x","conversion_time":', 1)
    elif roll < 0.1:
        raw = raw + rng.choice([b" ", b"x", b"\n", b"}"])
    return raw


def _full(body: bytes, pixel: SandboxPixel) -> list[str | None] | None:
    try:
        return validate_web_request(body, pixel).dedup_keys
    except XApiError:
        return None


def test_web_fast_path_accepts_only_what_the_full_checks_accept_alike(
    pixel: SandboxPixel,
) -> None:
    rng = random.Random(20261201)
    fast_taken = full_refused = 0
    for _ in range(CASES):
        body = _body(rng)
        fast, full = fast_dedup_keys(body, pixel), _full(body, pixel)
        if fast is not None:
            fast_taken += 1
            assert fast == full, body
        full_refused += full is None
    # Both kinds were well represented: the comparison says something.
    assert fast_taken > CASES // 4
    assert full_refused > CASES // 4


def test_web_fast_path_takes_the_usual_batch(pixel: SandboxPixel) -> None:
    conversions = [
        {
            "conversion_time": "2026-11-20T10:00:00.123Z",
            "event_id": "o87ne",
            "identifiers": [{"hashed_email": HASH}],
            "conversion_id": f"c-{i}",
            "value": "20.00",
            "price_currency": "USD",
            "number_items": 1,
        }
        for i in range(500)
    ]
    body = orjson.dumps({"conversions": conversions})
    keys = fast_dedup_keys(body, pixel)
    assert keys == [f"{PIXEL_ID}\x1fo87ne\x1fc-{i}" for i in range(500)]
    assert keys == _full(body, pixel)


ODD_PARAMS: list[str] = [
    "", " ", "333903271", "com.example.app", "IOS", "ANDROID", "ios", "INSTALL", "PURCHASE",
    "install", "2026-11-20T10:00:00.123Z", "2026-02-30T10:00:00.123Z", "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.123Z\n", "device-1", "a,b", "a b", "x" * 128, "x" * 129, "é",
    "6D92078A-8246-4BA4-AE5B-76104861E7DC", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "\x7f",
]  # fmt: skip


def _full_conversion(query: MultiDict[str]) -> AppConversion | None:
    try:
        return checked_app_conversion(query, EVENT_PARAMS)
    except XApiError:
        return None


def test_mact_fast_path_accepts_only_what_the_full_checks_accept_alike() -> None:
    rng = random.Random(20261202)
    usual = {
        "app_id": "333903271",
        "os_type": "IOS",
        "hashed_device_id": "bench-device-1",
        "conversion_type": "INSTALL",
        "conversion_time": "2026-11-20T10:00:00.123Z",
    }
    fast_taken = full_refused = 0
    for _ in range(CASES):
        params = dict(usual)
        for _ in range(rng.choice([0, 1, 1, 2])):
            params[rng.choice(list(usual))] = rng.choice(ODD_PARAMS)
        fast = usual_conversion(params)
        full = _full_conversion(MultiDict(params))
        if fast is not None:
            fast_taken += 1
            assert fast == full and fast.params == full.params, params
        full_refused += full is None
    assert fast_taken > CASES // 4
    assert full_refused > CASES // 4


def test_mact_usual_request_takes_the_fast_path() -> None:
    params = {
        "app_id": "333903271",
        "os_type": "IOS",
        "hashed_device_id": "bench-device-1",
        "conversion_type": "INSTALL",
        "conversion_time": "2026-11-20T10:00:00.123Z",
    }
    assert usual_conversion(params) == _full_conversion(MultiDict(params)) is not None


def test_oauth_header_values_decode_as_unquote_does() -> None:
    rng = random.Random(20261203)
    pieces = ["a", "+", "/", "=", "%", "%2B", "%2b", "%2F", "%3D", "%25", "%2", "%20", "%E9", "é"]
    for _ in range(CASES):
        raw = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        if "%" in raw:
            assert oauth1._decoded_value(raw) == unquote(raw), raw


def _duplicates_one_by_one(
    seen: dict[str, float], order: list[str], max_keys: int, keys: list[str | None], now: float
) -> list[bool]:
    """X's dedup, key after key: the rule `SeenConversions.duplicates` keeps."""
    found = []
    for key in keys:
        if key is None:
            found.append(False)
        elif key in seen:
            found.append(True)
        else:
            if len(seen) >= max_keys:
                del seen[order.pop(0)]
            seen[key] = now
            order.append(key)
            found.append(False)
    return found


def test_dedup_of_a_request_as_key_after_key() -> None:
    rng = random.Random(20261204)
    for max_keys in (3, 10, 1000):
        dedup = SeenConversions(DEDUP_WINDOW_S, max_keys)
        seen: dict[str, float] = {}
        order: list[str] = []
        sent: list[list[str | None]] = []
        for now in range(300):
            roll = rng.random()
            if roll < 0.2 and sent:
                keys = list(rng.choice(sent))  # a request sent again
            else:
                keys = [
                    None
                    if rng.random() < 0.05
                    else f"k{rng.randrange(40 if roll < 0.5 else 10**6)}"
                    for _ in range(rng.choice([1, 2, 5]))
                ]
            sent.append(keys)
            expected = _duplicates_one_by_one(seen, order, max_keys, keys, float(now))
            assert dedup.duplicates("p\x1f", keys, float(now)) == expected, keys
