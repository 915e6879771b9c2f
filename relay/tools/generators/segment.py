"""Segment track calls for the web path: order_id or messageId, twclid in the properties or
the page URL, traits with phones from several countries."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

from relay.config import Pixel
from relay.errors import ConfigError
from relay.tools.generators.base import Generator, Record, World, dumps, ip, iso_ms, moment, price

PHONES = (
    "+1 ({a}) {b}-{c:04d}",
    "+44 20 7946 {c:04d}",
    "+33 6 12 34 {d:02d} {e:02d}",
    "+49 30 901820{d:02d}",
    "+81 3-1234-{c:04d}",
    "+61 4 1234 {c:04d}",
)
AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)


def _pixels(world: World) -> list[Pixel]:
    pixels = [p for p in world.pixels if any(p.segment_events.values())]
    if not pixels:
        raise ConfigError("the mapping file maps no Segment event to a pixel (segment_events)")
    return pixels


def _phone(rng: random.Random) -> str:
    pattern = rng.choice(PHONES)
    return pattern.format(
        a=rng.choice((212, 415, 646)), b=rng.randint(200, 999), c=rng.randint(0, 9999),
        d=rng.randint(0, 99), e=rng.randint(0, 99),
    )  # fmt: skip


def valid(rng: random.Random, now: datetime, world: World) -> Record:
    pixel = rng.choice(_pixels(world))
    event = rng.choice(sorted(name for name, event_id in pixel.segment_events.items() if event_id))
    user = rng.randint(1, 10_000_000)
    twclid = uuid.UUID(int=rng.getrandbits(128)).hex[:26]
    props: Record = {"pixel_id": pixel.id}
    page: Record = {"url": f"https://shop.example/checkout/{user}"}
    if rng.random() < 0.5:
        props["twclid"] = twclid
    else:
        page["url"] += f"?utm_source=x&twclid={twclid}"
    if event == "Order Completed":
        quantity = rng.randint(1, 3)
        unit = price(rng)
        props[rng.choice(("revenue", "total", "value"))] = f"{float(unit) * quantity:.2f}"
        props.update(
            order_id=f"ord-{rng.getrandbits(48):x}",
            currency=rng.choice(("usd", "EUR", "gbp", "JPY")),
            products=[{"product_id": str(rng.randint(1000, 9999)), "sku": f"SKU-{user % 97}",
                       "name": "Blanket", "category": "Pet supplies", "price": float(unit),
                       "quantity": quantity}],
        )  # fmt: skip
    return {
        "type": "track",
        "event": event,
        "messageId": f"ajs-next-{uuid.UUID(int=rng.getrandbits(128)).hex}",
        "timestamp": iso_ms(moment(rng, now)),
        "properties": props,
        "context": {
            "ip": ip(rng),
            "userAgent": rng.choice(AGENTS),
            "page": page,
            "traits": {"email": f" Customer.{user}@Example.com ", "phone": _phone(rng)},
        },
    }


def dropped(rng: random.Random, record: Record) -> bytes:
    if rng.random() < 0.5:
        return dumps({**record, "type": "page"})
    return dumps({**record, "event": "Cart Viewed"})  # no pixel maps it


def broken(rng: random.Random, record: Record) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return dumps({**record, "timestamp": "yesterday"})
    if kind == 1:
        return dumps({**record, "context": {"ip": record["context"]["ip"]}, "properties": {
            "pixel_id": record["properties"]["pixel_id"]}})  # fmt: skip  # ip alone
    if kind == 2:
        return dumps({**record, "properties": {**record["properties"], "pixel_id": "zzzzz"}})
    return dumps({**record, "properties": {**record["properties"], "currency": "bitcoin"}})


GENERATOR = Generator(valid, dropped, broken)
