"""AppsFlyer Push API / raw data V5 (`appsflyer`): one JSON object per in-app event.

Quirks handled (event-formats.md): `event_value` is a JSON-encoded string whose numbers are
often strings; `event_time` is UTC `yyyy-mm-dd hh:mm:ss.sss` (a space, no zone); iOS app
ids come as `id333903271`; `is_lat` as a bool or a string; empty fields present or absent.
Decisions:
- Drop reasons, in order: `limit_ad_tracking` (is_lat), `not_a_conversion` /
  `unmapped_event` (event name), `no_device_id` (ATT leaves most iOS events without an
  IDFA: routine, not an error), `zero_device_id`.
- `event_revenue` / `event_revenue_currency` win over `af_revenue` / `af_currency`.
- The ledger key is appsflyer_id + event_time + event_name: the same event replayed by
  AppsFlyer is the same conversion.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats import app_common as app
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.formats.event_maps import APPSFLYER_EVENTS, APPSFLYER_NOT_CONVERSIONS, map_event
from relay.formats.fields import flag, optional, present, required, string
from relay.normalize.timestamps import normalize_time

_SPACE_TIME: Final = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?")
_DEVICE_FIELD: Final = {"IOS": "idfa", "ANDROID": "advertising_id"}
VALUE: Final = "event_value."


def adapt_appsflyer(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    if flag(record, "is_lat"):
        raise DroppedEvent("limit_ad_tracking")
    os = app.os_type(required(record, "platform"), "platform")
    app_id = app.app_id(required(record, "app_id"), os)
    name = string(record, "event_name")
    if name is None:
        raise InvalidEvent("event_name is required", field="event_name")
    conversion = map_event(
        name.strip(),
        app.event_map(ctx, app_id, "appsflyer"),
        APPSFLYER_EVENTS,
        APPSFLYER_NOT_CONVERSIONS,
    )
    device_field = _DEVICE_FIELD[os]
    device = app.device_params(
        ctx, present(record, device_field), None, field=device_field,
        missing=DroppedEvent("no_device_id"),
    )  # fmt: skip
    event_time = required(record, "event_time")
    values = _event_value(record)
    revenue = optional(record, "event_revenue", app.micros)
    if revenue is None:
        revenue = optional(values, "af_revenue", app.micros, VALUE)
    currency = optional(record, "event_revenue_currency", app.currency) or optional(
        values, "af_currency", app.currency, VALUE
    )
    params = {
        "device_ip_address": optional(record, "ip", app.ip_address),
        "level": optional(values, "af_level", app.level, VALUE),
        "number_items": optional(values, "af_quantity", app.quantity, VALUE),
        "price_currency": currency if revenue is not None else None,
        "price_micro": revenue,
        "user_payment_info": flag(values, "af_payment_info_available", VALUE),
    }
    appsflyer_id = string(record, "appsflyer_id")
    ledger = f"{appsflyer_id}\x1f{event_time}\x1f{name}" if appsflyer_id else ""
    return app.app_event(
        ctx,
        app=app_id,
        os=os,
        device=device,
        conversion=conversion,
        time=_time(event_time),
        optional=params,
        ledger_key=ledger,
    )


APPSFLYER_ADAPTER: Adapter = adapt_appsflyer


def _time(value: object) -> str:
    """AppsFlyer's `2026-11-20 10:00:00.123` is UTC; ISO with a zone and epoch ms work too."""
    if isinstance(value, str) and _SPACE_TIME.fullmatch(value.strip()):
        value = value.strip().replace(" ", "T") + "Z"
    return normalize_time(value, "event_time")


def _event_value(record: dict[str, Any]) -> dict[str, Any]:
    """`event_value`: a JSON string (or already an object); absent, "" and "{}" are empty."""
    value = present(record, "event_value")
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidEvent(
                "event_value is not a JSON object string", field="event_value"
            ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent("event_value must be a JSON object", field="event_value")
    return value
