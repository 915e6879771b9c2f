"""Branch webhooks: Unix milliseconds, `user_data.os` in any case, no app id in the payload
(the mapping's `[[branch_apps]]` has it)."""

from __future__ import annotations

import random
from datetime import datetime

from relay.config import BranchApp
from relay.errors import ConfigError
from relay.formats.event_maps import BRANCH_EVENTS
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

NAMES = sorted(BRANCH_EVENTS)
NOT_CONVERSIONS = ("VIEW_CART", "START_TRIAL", "CLICK_AD", "REINSTALL")


def _branch_app(world: World) -> BranchApp:
    apps = list(world.mapping.branch_apps.values())
    if not apps:
        raise ConfigError("the mapping file lists no Branch app ([[branch_apps]])")
    return apps[0]


def valid(rng: random.Random, now: datetime, world: World) -> Record:
    branch = _branch_app(world)
    oses = [
        os for os, app in (("IOS", branch.ios_app_id), ("ANDROID", branch.android_app_id)) if app
    ]
    os = rng.choice(oses)
    name = rng.choice(("INSTALL", "install", "PURCHASE", "PURCHASE", *NAMES))
    when = moment(rng, now)
    user: Record = {
        "os": rng.choice((os, os.lower(), os.capitalize() if os == "ANDROID" else "iOS")),
        "os_version": "17.1" if os == "IOS" else "14",
        "limit_ad_tracking": False,
        "ip": ip(rng),
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
        if os == "IOS"
        else "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A)",
        ("idfa" if os == "IOS" else "aaid"): device_id(rng, os),
    }
    record: Record = {
        "id": str(rng.getrandbits(60)),
        "name": name,
        "timestamp": int(when.timestamp() * 1000),
        "user_data": user,
    }
    if len(world.mapping.branch_apps) > 1:
        record["branch_app_id"] = branch.id
    if name == "PURCHASE":
        quantity = rng.randint(1, 3)
        unit = price(rng)
        record["event_data"] = {
            "revenue": round(float(unit) * quantity, 2),
            "currency": rng.choice(("USD", "usd", "EUR")),
            "transaction_id": f"t-{rng.getrandbits(32):x}",
        }
        record["content_items"] = [
            {"$sku": f"sku-{rng.randint(1, 99)}", "$product_name": "Gem pack",
             "$price": float(unit), "$quantity": quantity}
        ]  # fmt: skip
    return record


def dropped(rng: random.Random, record: Record) -> bytes:
    user = dict(record["user_data"])
    kind = rng.randrange(3)
    if kind == 0:
        user["limit_ad_tracking"] = True
        return dumps({**record, "user_data": user})
    if kind == 1:
        user["idfa" if "idfa" in user else "aaid"] = ZERO_DEVICE_ID
        return dumps({**record, "user_data": user})
    return dumps({**record, "name": rng.choice(NOT_CONVERSIONS)})


def broken(rng: random.Random, record: Record) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return dumps({**record, "timestamp": "2026-11-20T10:00:00Z"})
    if kind == 1:
        return dumps({**record, "user_data": {**record["user_data"], "os": "KaiOS"}})
    if kind == 2:
        return dumps({**record, "name": "PURCHASE", "event_data": {"revenue": "lots"}})
    return dumps({**record, "user_data": "iOS"})


GENERATOR = Generator(valid, dropped, broken)
