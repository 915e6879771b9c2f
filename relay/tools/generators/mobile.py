"""Canonical `mobile` events."""

from __future__ import annotations

import random
from datetime import datetime

from relay.formats.event_maps import CONVERSION_TYPES
from relay.tools.generators.base import (
    ZERO_DEVICE_ID,
    Generator,
    Record,
    World,
    device_id,
    dumps,
    ip,
    iso_ms,
    moment,
    price,
)

TYPES = sorted(CONVERSION_TYPES)


def valid(rng: random.Random, now: datetime, world: World) -> Record:
    app = rng.choice(world.need_apps())
    conversion = rng.choice(("INSTALL", "PURCHASE", "PURCHASE", *TYPES))
    record: Record = {
        "account_id": app.account_id,
        "app_id": app.id,
        "os_type": rng.choice((app.os_type, app.os_type.lower())),
        "device_id": device_id(rng, app.os_type),
        "conversion_type": conversion,
        "conversion_time": iso_ms(moment(rng, now)),
        "device_ip_address": ip(rng),
        "limit_ad_tracking": False,
    }
    if conversion == "PURCHASE":
        record.update(
            revenue=price(rng),
            currency=rng.choice(("USD", "eur", "GBP", "JPY")),
            number_items=rng.randint(1, 4),
            user_payment_info=rng.random() < 0.7,
        )
    elif conversion == "LEVEL_ACHIEVED":
        record["level"] = rng.randint(2, 80)
    return record


def dropped(rng: random.Random, record: Record) -> bytes:
    if rng.random() < 0.5:
        return dumps({**record, "limit_ad_tracking": True})
    return dumps({**record, "device_id": ZERO_DEVICE_ID})


def broken(rng: random.Random, record: Record) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return b'{"app_id": "333903271", '
    if kind == 1:
        return dumps({**record, "device_id": "not-a-device-id"})
    if kind == 2:
        return dumps({**record, "conversion_type": "BUY_STUFF"})
    if kind == 3:
        return dumps({**record, "conversion_time": "2026-11-20 10:00:00"})  # no zone
    if kind == 4:
        return dumps({**record, "revenue": "-4.99"})
    return dumps({**record, "os_type": "windows"})


GENERATOR = Generator(valid, dropped, broken)
