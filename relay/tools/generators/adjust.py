"""Adjust callbacks: per-app event tokens, cents or float revenue, lowercase currency, Unix
seconds or milliseconds, keys with or without braces."""

from __future__ import annotations

import random
from datetime import datetime

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


def valid(rng: random.Random, now: datetime, world: World) -> Record:
    app = rng.choice(world.need_apps())
    ios = app.os_type == "IOS"
    tokens = sorted(t for t, c in app.event_maps.get("adjust", {}).items() if c)
    kind = "event" if tokens and rng.random() < 0.8 else rng.choice(("install", "reattribution"))
    when = moment(rng, now)
    record: Record = {
        "activity_kind": kind,
        "app_id": app.id,
        "os_name": "ios" if ios else "android",
        "idfa": device_id(rng, "IOS") if ios else "",
        "gps_adid": "" if ios else device_id(rng, "ANDROID"),
        "adid": f"{rng.getrandbits(128):032x}",
        "ip_address": ip(rng),
    }
    if rng.random() < 0.5:
        record["created_at"] = str(int(when.timestamp()))
    else:
        record["created_at_milli"] = str(int(when.timestamp() * 1000))
    if kind == "event":
        token = rng.choice(tokens)
        record.update(event=token, event_name=f"event_{token}")
        if app.event_maps["adjust"][token] == "PURCHASE":
            amount = price(rng)
            if rng.random() < 0.5:
                record["revenue_float"] = amount
            else:
                record["revenue"] = str(round(float(amount) * 100))  # cents
            record["currency"] = rng.choice(("usd", "eur", "gbp"))
    if rng.random() < 0.5:
        return {"{" + key + "}": value for key, value in record.items()}
    return record


def _plain(record: Record) -> Record:
    return {key.strip("{}"): value for key, value in record.items()}


def dropped(rng: random.Random, record: Record) -> bytes:
    plain = _plain(record)
    kind = rng.randrange(3)
    if kind == 0:
        return dumps({**plain, "tracking_limited": "1"})
    if kind == 1:
        field = "idfa" if plain["os_name"] == "ios" else "gps_adid"
        return dumps({**plain, field: ZERO_DEVICE_ID})
    return dumps({**plain, "activity_kind": rng.choice(("session", "click", "impression"))})


def broken(rng: random.Random, record: Record) -> bytes:
    plain = _plain(record)
    plain.pop("created_at_milli", None)
    kind = rng.randrange(4)
    if kind == 0:
        return dumps({**plain, "created_at": "2026-11-20T10:00:00"})
    if kind == 1:
        return dumps({**plain, "activity_kind": "event", "event": ""})
    if kind == 2:
        return dumps({**plain, "os_name": "symbian"})
    created = plain.get("created_at") or "1763632800"
    return dumps({**plain, "created_at": created, "revenue_float": "1.00", "currency": "usdollar"})


GENERATOR = Generator(valid, dropped, broken)
