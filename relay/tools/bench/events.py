"""Realistic input events for the benchmarks, each with the identity the sandbox's journal and
the dead-letter topic show again, so that lost and duplicated events can be counted.

Web: several accounts, email + phone (each customer's own: 40% of them outside the `+1`
plan, where the relay's `+1` shortcut does not apply) + IP (v4 and v6) + user agent, a stable
`conversion_id` (the identity). Mobile: the canonical `mobile` format (IDFA / AdID, one
device per conversion), the identity is the conversion time, made unique per event to the
millisecond. Records are keyed by account, as an upstream producer partitions them.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import phonenumbers

from relay.config import load_mapping
from relay.formats.base import OutboundEvent
from relay.pipeline import outbound
from relay.tools.bench.configs import BenchPixel
from relay.tools.generators.base import World
from relay.tools.generators.mobile import valid as mobile_record

Kind = Literal["web", "mobile"]

# A fixed HMAC key for device ids: benchmarks only, never a partner's key.
BENCH_HMAC_KEY: Final = base64.b64encode(b"relay-bench-device-id-hmac-key!!").decode()
INTERNATIONAL_SHARE: Final = 0.4
REGIONS: Final = ("GB", "DE", "FR", "IN", "BR", "JP", "AU", "MX", "ES", "NG")
AREA_CODES: Final = ("212", "303", "312", "415", "512", "617", "646", "702", "808", "917")
USER_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)


@dataclass(frozen=True, slots=True)
class Event:
    key: bytes  # the account: what an upstream producer partitions by
    value: bytes
    identity: str


def _international_phones(rng: random.Random, per_region: int = 40) -> list[str]:
    """Templates of valid mobile numbers of other countries, in the loose shapes people type
    them; `_customer_phone` draws a customer's own number from one."""
    phones: list[str] = []
    for region in REGIONS:
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            continue
        national = str(example.national_number)
        found = 0
        for _ in range(per_region * 3):
            digits = national[:-4] + f"{rng.randrange(10_000):04d}"
            number = phonenumbers.parse(f"+{example.country_code}{digits}")
            if not phonenumbers.is_valid_number(number):
                continue
            style = rng.choice(
                (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164)
            )
            phones.append(phonenumbers.format_number(number, style))
            found += 1
            if found == per_region:
                break
    return phones


def _customer_phone(rng: random.Random, template: str) -> str:
    """A template with its last six digits drawn again: each customer has a number of their
    own (as each has an email of their own), so a cache of numbers seen does not flatter."""
    chars = list(template)
    drawn = 0
    for at in range(len(chars) - 1, -1, -1):
        if chars[at].isdigit():
            chars[at] = str(rng.randrange(10))
            drawn += 1
            if drawn == 6:
                break
    return "".join(chars)


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def web_events(count: int, pixels: Sequence[BenchPixel], *, seed: int = 1) -> list[Event]:
    """`count` valid web events spread at random over `pixels` (hence their accounts)."""
    rng = random.Random(seed)
    phones = _international_phones(rng)
    now = datetime.now(UTC)
    events: list[Event] = []
    for _ in range(count):
        pixel = rng.choice(pixels)
        events.append(_web_event(rng, pixel, now, phones))
    return events


def web_events_for(
    account_pixels: Sequence[BenchPixel], count: int, *, seed: int = 1
) -> list[Event]:
    """`count` events for each given pixel, interleaved."""
    rng = random.Random(seed)
    phones = _international_phones(rng)
    now = datetime.now(UTC)
    return [_web_event(rng, pixel, now, phones) for _ in range(count) for pixel in account_pixels]


def _web_event(
    rng: random.Random, pixel: BenchPixel, now: datetime, phones: Sequence[str]
) -> Event:
    user = rng.randint(1, 10_000_000)
    if rng.random() < INTERNATIONAL_SHARE:
        phone = _customer_phone(rng, rng.choice(phones))
    else:
        phone = f"+1 ({rng.choice(AREA_CODES)}) {rng.randint(200, 999)}-{rng.randrange(10_000):04d}"
    if rng.random() < 0.2:
        ip = f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
    else:
        ip = f"198.51.{rng.randrange(256)}.{rng.randint(1, 254)}"
    conversion_id = uuid.UUID(int=rng.getrandbits(128)).hex
    event: dict[str, Any] = {
        "account_id": pixel.account_id,
        "pixel_id": pixel.id,
        "event_id": rng.choice(pixel.event_ids),
        "conversion_time": _iso_ms(now - timedelta(seconds=rng.randint(0, 86_400))),
        "conversion_id": conversion_id,
        "email": f"  Customer.{user}@Example.com ",
        "phone": phone,
        "ip_address": ip,
        "user_agent": rng.choice(USER_AGENTS),
        "value": f"{rng.randint(100, 50_000) / 100:.2f}",
        "price_currency": rng.choice(("usd", "eur", "gbp", "jpy")),
        "number_items": rng.randint(1, 5),
        "consent": {"opt_out": False},
    }
    return Event(pixel.account_id.encode(), orjson.dumps(event), conversion_id)


def mobile_events(count: int, config: Path, *, seed: int = 1) -> list[Event]:
    """`count` conversions of the canonical `mobile` generator (`relay produce --format
    mobile`) over the apps of `config`, each with a conversion time of its own (the
    identity), one device each."""
    world = World.of(load_mapping(config))
    rng = random.Random(seed)
    now = datetime.now(UTC)
    # Each seed has its own 1,000 s of past (a million distinct milliseconds): calls with
    # different seeds never share an identity.
    base = now - timedelta(hours=48) + timedelta(seconds=1000 * (seed % 150))
    events: list[Event] = []
    for i in range(count):
        record = mobile_record(rng, now, world)
        when = _iso_ms(base + timedelta(milliseconds=i))
        record["conversion_time"] = when
        events.append(Event(str(record["account_id"]).encode(), orjson.dumps(record), when))
    return events


def entry_identity(entry: dict[str, Any], kind: Kind) -> str:
    """The identity of one sandbox journal entry."""
    if kind == "mobile":
        return str(entry["params"].get("conversion_time"))
    return str(entry["conversion"].get("conversion_id"))


def dead_letter_identity(value: bytes | None, kind: Kind) -> str | None:
    """The identity of a dead-lettered record: an outbound record (any codec version) or the
    original input."""
    if not value:
        return None
    body = value.partition(b"\n")[2] if value.startswith(b"R") else value
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("payload"), dict):
        doc = doc["payload"]
    if not isinstance(doc, dict):
        return None
    found = doc.get("conversion_time" if kind == "mobile" else "conversion_id")
    return str(found) if found is not None else None


def outbound_web_events_for(pixel: BenchPixel, count: int, *, seed: int = 1) -> list[Event]:
    """`count` web events of one pixel as ingest writes them to `<prefix>.outbound` (routing
    line + X's conversion entry, an email already hashed): a backlog the deliver stage
    holds, without the ingest stage's work in front of it."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events: list[Event] = []
    for _ in range(count):
        conversion_id = uuid.UUID(int=rng.getrandbits(128)).hex
        email = f"customer.{rng.randint(1, 10_000_000)}@example.com"
        payload = {
            "conversion_time": _iso_ms(now - timedelta(seconds=rng.randint(0, 86_400))),
            "event_id": rng.choice(pixel.event_ids),
            "identifiers": [{"hashed_email": hashlib.sha256(email.encode()).hexdigest()}],
            "conversion_id": conversion_id,
        }
        value = outbound.encode(OutboundEvent("web", pixel.account_id, pixel.id, payload))
        events.append(Event(pixel.account_id.encode(), value, conversion_id))
    return events
