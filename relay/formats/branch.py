"""Branch webhooks (`branch`): one event of Branch's event ontology per record.

Quirks handled (event-formats.md): `timestamp` is Unix milliseconds; `user_data.os` is
"iOS"/"Android" in any case; the app id is not in the payload, it comes from the mapping
file's `[[branch_apps]]` (id, ios_app_id, android_app_id). Decisions:
- The Branch app is the entry named by the record's `branch_app_id` (a field the webhook
  template adds, for a relay serving several Branch apps); without it the only configured
  entry serves.
- Event names: the app's `branch_events` first, then the defaults (standard events are
  upper case, the webhook's "install" is not: the defaults are matched case-insensitively).
- `number_items` is the sum of `content_items[].$quantity`; revenue and currency come
  from `event_data`.
- Drop reasons: `limit_ad_tracking`, `not_a_conversion` / `unmapped_event`,
  `no_device_id`, `zero_device_id`. The ledger key is the webhook's event `id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from relay.config import BranchApp, MappingFile
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats import app_common as app
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.formats.event_maps import BRANCH_EVENTS, BRANCH_NOT_CONVERSIONS
from relay.formats.fields import flag, id_text, obj, optional, present, required, string
from relay.normalize.timestamps import normalize_time

_DEVICE_FIELD: Final = {"IOS": "idfa", "ANDROID": "aaid"}
USER: Final = "user_data."
EVENT: Final = "event_data."


def adapt_branch(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    user = obj(record, "user_data")
    if flag(user, "limit_ad_tracking", USER):
        raise DroppedEvent("limit_ad_tracking")
    name = string(record, "name")
    if name is None:
        raise InvalidEvent("name is required", field="name")
    os = app.os_type(required(user, "os", USER), USER + "os")
    branch_app = _branch_app(record, ctx.mapping)
    store_id = branch_app.ios_app_id if os == "IOS" else branch_app.android_app_id
    if not store_id:
        raise InvalidEvent(
            f"branch app {branch_app.id} has no {os} app id in the mapping",
            field=USER + "os",
            error_class="unknown_app",
        )
    app_id = app.app_id(store_id, os)
    conversion = _map_event(name.strip(), app.event_map(ctx, app_id, "branch"))
    device_field = _DEVICE_FIELD[os]
    device = app.device_params(
        ctx, present(user, device_field), None, field=USER + device_field,
        missing=DroppedEvent("no_device_id"),
    )  # fmt: skip
    event = obj(record, "event_data")
    revenue = optional(event, "revenue", app.micros, EVENT)
    params = {
        "device_ip_address": optional(user, "ip", app.ip_address, USER),
        "number_items": _items(present(record, "content_items")),
        "price_currency": optional(event, "currency", app.currency, EVENT)
        if revenue is not None
        else None,
        "price_micro": revenue,
    }
    return app.app_event(
        ctx,
        app=app_id,
        os=os,
        device=device,
        conversion=conversion,
        time=normalize_time(_epoch_ms(required(record, "timestamp")), "timestamp"),
        optional=params,
        ledger_key=id_text(record, "id") or "",
    )


BRANCH_ADAPTER: Adapter = adapt_branch


def _branch_app(record: dict[str, Any], mapping: MappingFile) -> BranchApp:
    wanted = id_text(record, "branch_app_id")
    if wanted is not None:
        found = mapping.branch_apps.get(wanted)
        if found is None:
            raise InvalidEvent(
                f"branch app {wanted} is not in the mapping file ([[branch_apps]])",
                field="branch_app_id",
                error_class="unknown_app",
            )
        return found
    if len(mapping.branch_apps) == 1:
        return next(iter(mapping.branch_apps.values()))
    raise InvalidEvent(
        "branch_app_id is required when the mapping lists other than one Branch app",
        field="branch_app_id",
        error_class="unknown_app",
    )


def _map_event(name: str, overrides: Mapping[str, str] | None) -> str:
    mapped = overrides.get(name) if overrides else None
    if mapped is None:
        mapped = BRANCH_EVENTS.get(name.upper())
    if mapped:
        return mapped
    upper = name.upper()
    if mapped == "" or upper in BRANCH_NOT_CONVERSIONS or upper.endswith("_STREAM"):
        raise DroppedEvent("not_a_conversion")
    raise DroppedEvent("unmapped_event")


def _epoch_ms(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise InvalidEvent("timestamp must be Unix milliseconds", field="timestamp")


def _items(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidEvent("content_items must be a list", field="content_items")
    total = 0
    for index, item in enumerate(value):
        at = f"content_items[{index}]."
        if not isinstance(item, dict):
            raise InvalidEvent(f"content_items[{index}] must be an object", field=at[:-1])
        total += optional(item, "$quantity", app.quantity, at) or 0
    return total or None
