"""The canonical `mobile` format: one JSON object per app conversion (see event-formats.md).

Field names are X's conversion_event parameters, plus `device_id` (raw IDFA/AdID, hashed
here), `revenue` + `currency` (whole units, turned into price_micro) and
`limit_ad_tracking`. Decisions where the reference leaves room:
- `limit_ad_tracking` with any value but absent, null or false drops the event, before
  anything else is read (fails closed, as the web format's opt-out does).
- A raw `device_id` wins over `hashed_device_id`; one of them is required.
- `price_micro` wins over `revenue`; `price_currency` over `currency`.
"""

from __future__ import annotations

from typing import Any

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats import app_common as app
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.formats.fields import base36, flag, id_text, optional, present, required
from relay.normalize.timestamps import normalize_time


def adapt_mobile(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    lat = record.get("limit_ad_tracking")
    if lat is not None and lat is not False:
        raise DroppedEvent("limit_ad_tracking")
    os = app.os_type(required(record, "os_type"))
    app_id = app.app_id(required(record, "app_id"), os)
    account = present(record, "account_id")
    device = app.device_params(
        ctx, present(record, "device_id"), present(record, "hashed_device_id"), field="device_id"
    )
    price_micro = optional(record, "price_micro", _price_micro)
    if price_micro is None:
        price_micro = optional(record, "revenue", app.micros)
    params = {
        "click_window": optional(record, "click_window", _click_window),
        "view_through_window": optional(record, "view_through_window", _view_window),
        "device_ip_address": optional(record, "device_ip_address", app.ip_address),
        "level": optional(record, "level", app.level),
        "number_items": optional(record, "number_items", app.quantity),
        "non_twitter_engagement_time": optional(
            record, "non_twitter_engagement_time", app.engagement_time
        ),
        "non_twitter_engagement_type": optional(
            record, "non_twitter_engagement_type", app.engagement_type
        ),
        "price_currency": optional(record, "price_currency", app.currency)
        or optional(record, "currency", app.currency),
        "price_micro": price_micro,
        "user_payment_info": flag(record, "user_payment_info"),
    }
    return app.app_event(
        ctx,
        app=app_id,
        os=os,
        device=device,
        conversion=app.conversion_type(required(record, "conversion_type")),
        time=normalize_time(required(record, "conversion_time")),
        optional=params,
        ledger_key=id_text(record, "event_id") or "",
        account_id=None if account is None else base36(account, "account_id"),
    )


MOBILE_ADAPTER: Adapter = adapt_mobile


def _price_micro(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidEvent(f"{field} must be a non-negative integer (micro-units)", field=field)


def _click_window(value: object, field: str) -> int:
    return app.window(value, field, app.CLICK_WINDOWS)


def _view_window(value: object, field: str) -> int:
    return app.window(value, field, app.VIEW_THROUGH_WINDOWS)
