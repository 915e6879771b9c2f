"""What the app adapters (`mobile`, `appsflyer`, `adjust`, `branch`) share: app ids, OS
types, device ids, the optional conversion_event parameters, and the outbound event itself.

The payload holds conversion_event's query parameters exactly as X names them, with JSON
types (see relay/pipeline/outbound.py); windows only when the input gave them, since the
deliver stage fills them from the account's app event tags.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import NormalizeContext, OutboundEvent
from relay.formats.event_maps import CONVERSION_TYPES
from relay.formats.fields import integer
from relay.normalize.device_ids import check_hashed_device_id, device_id_params
from relay.normalize.money import (
    normalize_amount,
    normalize_currency,
    normalize_quantity,
    to_micros,
)
from relay.normalize.timestamps import normalize_time

OsType = Literal["IOS", "ANDROID"]
# iOS: the App Store's numeric id; Android: a package name (letters, digits, _ and dots).
_APP_ID: Final = re.compile(r"[A-Za-z0-9_.]{1,255}")
_OS_TYPES: Final[Mapping[str, OsType]] = {"ios": "IOS", "android": "ANDROID"}
_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
CLICK_WINDOWS: Final = (1, 7, 14, 30)
VIEW_THROUGH_WINDOWS: Final = (0, 1, 7, 14, 30)
ENGAGEMENT_TYPES: Final = ("CLICK", "VIEW")


def os_type(value: object, field: str = "os_type") -> OsType:
    """ "iOS", "ios", "IOS", "Android", ... -> IOS | ANDROID."""
    found = _OS_TYPES.get(value.strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise InvalidEvent(f"{field} must be IOS or ANDROID (any case)", field=field)
    return found


def app_id(value: object, os: OsType, field: str = "app_id") -> str:
    """The store id as X wants it: AppsFlyer's and Adjust's `id333903271` loses its `id`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidEvent(f"{field} must be a string", field=field)
    text = value.strip()
    if os == "IOS" and text[:2].lower() == "id" and text[2:].isdigit():
        text = text[2:]
    if _APP_ID.fullmatch(text) is None:
        raise InvalidEvent(
            f"{field} is not an app store id (digits for iOS, a package name for Android)",
            field=field,
        )
    return text


def conversion_type(value: object, field: str = "conversion_type") -> str:
    text = value.strip().upper() if isinstance(value, str) else None
    if text not in CONVERSION_TYPES:
        raise InvalidEvent(f"{field} is not one of X's 20 conversion types", field=field)
    return text


def device_params(
    ctx: NormalizeContext,
    raw: object,
    hashed: object,
    *,
    field: str,
    hashed_field: str = "hashed_device_id",
    missing: InvalidEvent | DroppedEvent | None = None,
) -> dict[str, str]:
    """hashed_device_id (and extra_device_ids) from a raw id, else a pre-hashed one.

    A raw id wins; with neither, `missing` is raised (default: invalid, field `field`).
    """
    if isinstance(raw, str) and raw.strip():
        return device_id_params(
            raw,
            key=ctx.device_id_hmac_key,
            case=ctx.device_id_case,
            extra=ctx.extra_device_ids,
            field=field,
        )
    if raw is not None and not isinstance(raw, str):
        raise InvalidEvent(f"{field} must be a string", field=field)
    if isinstance(hashed, str) and hashed.strip():
        return {"hashed_device_id": check_hashed_device_id(hashed, hashed_field)}
    if hashed is not None and not isinstance(hashed, str):
        raise InvalidEvent(f"{hashed_field} must be a string", field=hashed_field)
    raise missing or InvalidEvent(f"{field} or {hashed_field} is required", field=field)


def ip_address(value: object, field: str) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is not None and _IPV4.fullmatch(text):  # most feeds: 0.4 us against 4 us
        return text
    try:
        if text is None:
            raise ValueError
        ipaddress.ip_address(text)
    except ValueError:
        raise InvalidEvent(f"{field} is not an IPv4 or IPv6 address", field=field) from None
    return text


def micros(amount: object, field: str) -> int:
    """An amount in whole units ("4.99", 4.99) -> price_micro, exactly."""
    return to_micros(normalize_amount(amount, field))


def currency(value: object, field: str) -> str:
    return normalize_currency(value, field)


def quantity(value: object, field: str) -> int:
    return normalize_quantity(integer(value, field), field)


def level(value: object, field: str) -> int:
    number = integer(value, field)
    if number < 0:
        raise InvalidEvent(f"{field} must not be negative", field=field)
    return number


def window(value: object, field: str, allowed: tuple[int, ...]) -> int:
    number = integer(value, field)
    if number not in allowed:
        raise InvalidEvent(f"{field} must be one of {allowed} days", field=field)
    return number


def engagement_type(value: object, field: str) -> str:
    text = value.strip().upper() if isinstance(value, str) else None
    if text not in ENGAGEMENT_TYPES:
        raise InvalidEvent(f"{field} must be CLICK or VIEW", field=field)
    return text


def engagement_time(value: object, field: str) -> str:
    return normalize_time(value, field)


def app_event(
    ctx: NormalizeContext,
    *,
    app: str,
    os: OsType,
    device: dict[str, str],
    conversion: str,
    time: str,
    optional: Mapping[str, Any],
    ledger_key: str = "",
    account_id: str | None = None,
) -> OutboundEvent:
    """The outbound app conversion.

    Budget key: the app's account from the mapping, else the event's own `account_id`, else
    the app id (so that a feed works with no mapping).
    """
    known = ctx.mapping.apps.get(app)
    if known is not None and known.os_type != os:
        raise InvalidEvent(
            f"app {app} is an {known.os_type} app in the mapping, the event says {os}",
            field="os_type",
        )
    if known is not None and account_id is not None and account_id != known.account_id:
        raise InvalidEvent(
            f"account_id {account_id} does not own app {app} (the mapping says {known.account_id})",
            field="account_id",
        )
    click, view = optional.get("click_window"), optional.get("view_through_window")
    if click is not None and view is not None and click < view:
        raise InvalidEvent(
            "click_window must be >= view_through_window", field="view_through_window"
        )
    payload: dict[str, Any] = {
        "app_id": app,
        "os_type": os,
        **device,
        "conversion_type": conversion,
        "conversion_time": time,
    }
    payload.update((k, v) for k, v in optional.items() if v is not None)
    budget_key = known.account_id if known is not None else account_id or app
    return OutboundEvent(
        kind="app", budget_key=budget_key, target=app, payload=payload, ledger_key=ledger_key
    )


def event_map(ctx: NormalizeContext, app: str, fmt: str) -> Mapping[str, str] | None:
    """The app's own overrides of a format's event map (mapping file), if any."""
    known = ctx.mapping.apps.get(app)
    return known.event_maps.get(fmt) if known is not None else None
