"""Adjust callbacks (`adjust`): the callback's placeholders as one flat JSON object.

Quirks handled (event-formats.md): keys with or without braces (`{created_at}` or
`created_at`); events are per-app tokens, so `{event}` maps to a conversion type through
the app's `adjust_tokens` in the mapping file; `{created_at}` is Unix seconds and
`{created_at_milli}` milliseconds; `{revenue_float}` is whole units, `{revenue}` cents;
`{currency}` may be lowercase. Decisions:
- `install` -> INSTALL, `reattribution` / `reattribution_reinstall` -> RE_ENGAGE,
  `event` -> the token map; session, click, impression, uninstall, reinstall and
  `rejected_*` are not conversions; a token or kind in no map is `unmapped_event`.
- `{tracking_limited}` = 1 drops the event (`limit_ad_tracking`); a missing ad id is
  `no_device_id`.
- `{created_at_milli}` wins over `{created_at}`, `{revenue_float}` over `{revenue}`.
- The ledger key is Adjust's own device id (`{adid}`, else the hashed ad id) +
  created_at + event token: never the raw ad id.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats import app_common as app
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.formats.event_maps import ADJUST_ACTIVITIES, ADJUST_NOT_CONVERSIONS, map_event
from relay.formats.fields import flag, optional, present, required, string
from relay.normalize.money import normalize_amount
from relay.normalize.timestamps import normalize_time

_DEVICE_FIELD: Final = {"IOS": "idfa", "ANDROID": "gps_adid"}
_MICROS_PER_CENT: Final = Decimal(10_000)


def adapt_adjust(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    record = _unbraced(record)
    if flag(record, "tracking_limited"):
        raise DroppedEvent("limit_ad_tracking")
    kind = string(record, "activity_kind")
    if kind is None:
        raise InvalidEvent("activity_kind is required", field="activity_kind")
    kind = kind.strip().lower()
    if kind in ADJUST_NOT_CONVERSIONS or kind.startswith("rejected_"):
        raise DroppedEvent("not_a_conversion")
    os = app.os_type(required(record, "os_name"), "os_name")
    app_id = app.app_id(required(record, "app_id"), os)
    token = (string(record, "event") or "").strip()
    if kind == "event":
        if not token:
            raise InvalidEvent("event (the event token) is required for events", field="event")
        conversion = map_event(token, app.event_map(ctx, app_id, "adjust"), {})
    else:
        conversion = map_event(kind, None, ADJUST_ACTIVITIES)
    device_field = _DEVICE_FIELD[os]
    device = app.device_params(
        ctx, present(record, device_field), None, field=device_field,
        missing=DroppedEvent("no_device_id"),
    )  # fmt: skip
    created_ms = optional(record, "created_at_milli", _epoch_ms)
    if created_ms is None:
        created_ms = _epoch_s(required(record, "created_at"), "created_at")
    revenue = optional(record, "revenue_float", app.micros)
    if revenue is None:
        revenue = optional(record, "revenue", _cents_to_micros)
    params = {
        "device_ip_address": optional(record, "ip_address", app.ip_address),
        "price_currency": optional(record, "currency", app.currency)
        if revenue is not None
        else None,
        "price_micro": revenue,
    }
    source = (string(record, "adid") or "").strip() or device["hashed_device_id"]
    return app.app_event(
        ctx,
        app=app_id,
        os=os,
        device=device,
        conversion=conversion,
        time=normalize_time(created_ms, "created_at"),
        optional=params,
        ledger_key=f"{source}\x1f{created_ms}\x1f{token or kind}",
    )


ADJUST_ADAPTER: Adapter = adapt_adjust


def _unbraced(record: dict[str, Any]) -> dict[str, Any]:
    """`{created_at}` -> `created_at`; a plain key wins over its braced twin."""
    braced = [key for key in record if key[:1] == "{" and key[-1:] == "}"]
    if not braced:
        return record
    plain = dict(record)
    for key in braced:
        plain.setdefault(key[1:-1], plain.pop(key))
    return plain


def _epoch_digits(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise InvalidEvent(f"{field} must be a Unix timestamp (digits)", field=field)


def _epoch_s(value: object, field: str) -> int:
    return _epoch_digits(value, field) * 1000


def _epoch_ms(value: object, field: str) -> int:
    return _epoch_digits(value, field)


def _cents_to_micros(value: object, field: str) -> int:
    return int((Decimal(normalize_amount(value, field)) * _MICROS_PER_CENT).to_integral_value())
