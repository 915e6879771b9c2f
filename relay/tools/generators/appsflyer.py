"""AppsFlyer Push API (raw data V5) events: string numbers in a JSON-string event_value,
space timestamps, `id` before iOS app ids."""

from __future__ import annotations

import random
from datetime import datetime

import orjson

from relay.formats.event_maps import APPSFLYER_EVENTS
from relay.tools.generators.base import (
    ZERO_DEVICE_ID,
    Generator,
    Record,
    World,
    device_id,
    dumps,
    ip,
    moment,
    price,
)

NAMES = sorted(APPSFLYER_EVENTS)
NOT_CONVERSIONS = ("af_opened_from_push_notification", "af_location_changed", "af_ad_view")


def valid(rng: random.Random, now: datetime, world: World) -> Record:
    app = rng.choice(world.need_apps())
    ios = app.os_type == "IOS"
    name = rng.choice(("install", "af_purchase", "af_purchase", *NAMES))
    when = moment(rng, now)
    value: dict[str, str] = {}
    record: Record = {
        "app_id": f"id{app.id}" if ios else app.id,
        "platform": "ios" if ios else "android",
        "idfa": device_id(rng, "IOS") if ios else None,
        "advertising_id": None if ios else device_id(rng, "ANDROID"),
        "event_name": name,
        "event_time": when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "event_value": "",
        "ip": ip(rng),
        "appsflyer_id": f"{int(when.timestamp() * 1000)}-{rng.randint(1_000_000, 9_999_999)}",
        "is_lat": rng.choice((False, "false", None)),
    }
    if name == "af_purchase":
        revenue, currency = price(rng), rng.choice(("USD", "EUR", "GBP"))
        value = {
            "af_revenue": revenue,
            "af_currency": currency,
            "af_quantity": str(rng.randint(1, 3)),
        }
        if rng.random() < 0.5:  # event_revenue present in half of them, af_revenue only otherwise
            record.update(event_revenue=revenue, event_revenue_currency=currency)
    elif name == "af_level_achieved":
        value = {"af_level": str(rng.randint(2, 60))}
    if value:
        record["event_value"] = orjson.dumps(value).decode()
    return record


def _device_field(record: Record) -> str:
    return "idfa" if record["platform"] == "ios" else "advertising_id"


def dropped(rng: random.Random, record: Record) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return dumps({**record, "is_lat": True})
    if kind == 1:
        return dumps({**record, _device_field(record): ZERO_DEVICE_ID})
    return dumps({**record, "event_name": rng.choice(NOT_CONVERSIONS)})


def broken(rng: random.Random, record: Record) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return dumps({**record, "event_value": '{"af_revenue": "4.99"'})  # cut short
    if kind == 1:
        return dumps({**record, "event_value": '{"af_quantity": "two"}'})
    if kind == 2:
        return dumps({**record, "event_time": "20/11/2026 10:00"})
    if kind == 3:
        return dumps({**record, _device_field(record): "00000000-0000-0000-0000"})
    return dumps({**record, "platform": "blackberry"})


GENERATOR = Generator(valid, dropped, broken)
