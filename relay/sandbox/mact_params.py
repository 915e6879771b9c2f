"""X's rules for the MACT query parameters of `POST /12/conversion_event` and
`GET /12/conversion_attribution`, in plain Python.

Every distinct problem is reported (one request may carry several errors). Where X's
documents leave a rule open, this module is strict, like validation.py, so that the relay
cannot come to depend on leniency X may not have:
- a parameter X does not list for the endpoint is rejected, and so is one given twice;
  conversion_attribution takes only its documented parameters (no purchase metadata);
- an empty value is a missing parameter when required, an invalid one otherwise;
- integers are plain decimal digits: level >= 0, number_items > 0, price_micro >= 0;
- a device id is 1..128 printable characters without spaces or commas, and never a raw
  advertising id (8-4-4-4-12 hex): the relay must send its HMAC, never the IDFA/AdID itself;
- extra_device_ids holds at most 20 ids;
- price_currency is a current ISO 4217 code (currencies.py).

The windows are returned as given (None when absent): mact.py fills them in, from the app
event tag on conversion_event, from X's documented defaults on conversion_attribution.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from multidict import MultiMapping

from relay.sandbox.attribution import epoch_ms
from relay.sandbox.currencies import is_currency
from relay.sandbox.responses import ErrorDetail, XApiError

INVALID: Final = "INVALID_PARAMETER"
MISSING: Final = "MISSING_PARAMETER"
CONVERSION_TYPES: Final = frozenset(
    {
        "PURCHASE",
        "SIGN_UP",
        "INSTALL",
        "RE_ENGAGE",
        "UPDATE",
        "TUTORIAL_COMPLETE",
        "RESERVATION",
        "ADD_TO_CART",
        "ADD_TO_WISHLIST",
        "LOGIN",
        "CHECKOUT_INITIATED",
        "SEARCH",
        "LEVEL_ACHIEVED",
        "ACHIEVEMENT_UNLOCKED",
        "CONTENT_VIEW",
        "SHARE",
        "INVITE",
        "ADDED_PAYMENT_INFO",
        "SPENT_CREDITS",
        "RATED",
    }
)
OS_TYPES: Final = ("IOS", "ANDROID")
ENGAGEMENT_TYPES: Final = ("CLICK", "VIEW")
CLICK_WINDOWS: Final = (1, 7, 14, 30)
VIEW_THROUGH_WINDOWS: Final = (0, 1, 7, 14, 30)
DEFAULT_CLICK_WINDOW: Final = 14
DEFAULT_VIEW_THROUGH_WINDOW: Final = 1
MAX_EXTRA_DEVICE_IDS: Final = 20
MAX_DEVICE_ID_CHARS: Final = 128
MAX_INT32: Final = 2**31 - 1
MAX_INT64: Final = 2**63 - 1

REQUIRED: Final = ("app_id", "conversion_time", "conversion_type", "hashed_device_id", "os_type")
_REQUIRED_SET: Final = frozenset(REQUIRED)
_WINDOWS_AND_NON_X: Final = (
    "click_window",
    "view_through_window",
    "non_twitter_engagement_time",
    "non_twitter_engagement_type",
)
# Metadata: X records it with the conversion, and it never changes the attribution.
METADATA: Final = (
    "device_ip_address",
    "level",
    "number_items",
    "price_currency",
    "price_micro",
    "user_payment_info",
)
EVENT_PARAMS: Final = frozenset((*REQUIRED, *_WINDOWS_AND_NON_X, *METADATA, "limit_ad_tracking"))
ATTRIBUTION_PARAMS: Final = frozenset((*REQUIRED, *_WINDOWS_AND_NON_X, "extra_device_ids"))

_DEVICE_ID: Final = re.compile(rf"[!-~]{{1,{MAX_DEVICE_ID_CHARS}}}", re.ASCII)
_RAW_AD_ID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", re.ASCII)
_RAW_AD_ID_CHARS: Final = 36
_DIGITS: Final = re.compile(r"\d{1,19}", re.ASCII)


@dataclass(slots=True)
class AppConversion:
    """A valid MACT request: its typed fields, and `params` as received (X echoes them).
    Read-only by convention: frozen, its 14 fields would cost one `object.__setattr__`
    each on every request."""

    app_id: str
    os_type: str
    hashed_device_id: str
    conversion_type: str
    conversion_time: str
    conversion_ms: int
    click_window: int | None  # as given; None when absent
    view_through_window: int | None
    non_twitter_engagement_time: str | None
    non_twitter_engagement_type: str | None
    limit_ad_tracking: bool
    extra_device_ids: tuple[str, ...]
    metadata: Mapping[str, Any]  # the metadata given, typed
    params: Mapping[str, str] = field(repr=False)

    @property
    def device_ids(self) -> tuple[str, ...]:
        return (self.hashed_device_id, *self.extra_device_ids)


def received_params(query: MultiMapping[str]) -> dict[str, str]:
    """The query as X echoes it in `request.params` (the first value of each name)."""
    params: dict[str, str] = {}
    for name, value in query.items():
        params.setdefault(name, value)
    return params


def parse_app_conversion(query: MultiMapping[str], allowed: frozenset[str]) -> AppConversion:
    """The request's parameters, or XApiError(400) with every distinct problem."""
    params = received_params(query)
    if len(params) == len(query) and params.keys() == _REQUIRED_SET and allowed >= _REQUIRED_SET:
        usual = usual_conversion(params)
        if usual is not None:
            return usual
    return checked_app_conversion(query, allowed)


def checked_app_conversion(query: MultiMapping[str], allowed: frozenset[str]) -> AppConversion:
    """`parse_app_conversion` with every check run, one by one."""
    params = received_params(query)
    errors: list[ErrorDetail] = []
    # The usual request has neither unknown nor repeated names: two size tests tell.
    if len(params) != len(query) or not allowed.issuperset(params):
        for name in params:
            if name not in allowed:
                errors.append(ErrorDetail(INVALID, f"Unknown parameter {_clip(name)}", _clip(name)))
            elif len(query.getall(name)) > 1:
                errors.append(ErrorDetail(INVALID, f"{name} may be given only once", name))
        # A parameter the endpoint does not take was reported above: no second error for it.
        check = _Checker({k: v for k, v in params.items() if k in allowed}, errors)
    else:
        check = _Checker(params, errors)

    app_id = check.required("app_id")
    conversion_time = check.required("conversion_time")
    conversion_ms = check.time("conversion_time", conversion_time)
    conversion_type = check.choice(
        "conversion_type", check.required("conversion_type"), CONVERSION_TYPES
    )
    hashed_device_id = check.device_id("hashed_device_id", check.required("hashed_device_id"))
    os_type = check.choice("os_type", check.required("os_type"), OS_TYPES)
    click_window = check.window("click_window", CLICK_WINDOWS)
    view_window = check.window("view_through_window", VIEW_THROUGH_WINDOWS)
    if click_window is not None and view_window is not None:
        check_windows(click_window, view_window, errors)
    non_x_time = check.optional("non_twitter_engagement_time")
    check.time("non_twitter_engagement_time", non_x_time)
    non_x_type = check.choice(
        "non_twitter_engagement_type",
        check.optional("non_twitter_engagement_type"),
        ENGAGEMENT_TYPES,
    )
    extra = check.extra_device_ids(check.optional("extra_device_ids"))
    limit_ad_tracking = check.boolean("limit_ad_tracking")
    metadata = check.metadata()

    if errors:
        raise XApiError(400, list(dict.fromkeys(errors)), params)
    # Every value is present and valid here: the checks above reported anything else.
    return AppConversion(
        app_id=app_id or "",
        os_type=os_type or "",
        hashed_device_id=hashed_device_id or "",
        conversion_type=conversion_type or "",
        conversion_time=conversion_time or "",
        conversion_ms=conversion_ms or 0,
        click_window=click_window,
        view_through_window=view_window,
        non_twitter_engagement_time=non_x_time,
        non_twitter_engagement_type=non_x_type,
        limit_ad_tracking=bool(limit_ad_tracking),
        extra_device_ids=extra,
        metadata=metadata,
        params=params,
    )


def usual_conversion(params: dict[str, str]) -> AppConversion | None:
    """The usual request (the required parameters, once each, nothing else) when every one
    is valid, checked in one go; None for anything else, which `parse_app_conversion`'s
    checks then report as they do for every request."""
    conversion_time = params["conversion_time"]
    device_id = params["hashed_device_id"]
    conversion_ms = epoch_ms(conversion_time) if conversion_time else None
    if (
        conversion_ms is None
        or not params["app_id"]
        or params["conversion_type"] not in CONVERSION_TYPES
        or params["os_type"] not in OS_TYPES
        or _DEVICE_ID.fullmatch(device_id) is None
        or "," in device_id
        or (len(device_id) == _RAW_AD_ID_CHARS and _RAW_AD_ID.fullmatch(device_id) is not None)
    ):
        return None
    return AppConversion(
        app_id=params["app_id"],
        os_type=params["os_type"],
        hashed_device_id=device_id,
        conversion_type=params["conversion_type"],
        conversion_time=conversion_time,
        conversion_ms=conversion_ms,
        click_window=None,
        view_through_window=None,
        non_twitter_engagement_time=None,
        non_twitter_engagement_type=None,
        limit_ad_tracking=False,
        extra_device_ids=(),
        metadata={},
        params=params,
    )


def check_windows(click_window: int, view_window: int, errors: list[ErrorDetail]) -> None:
    """X's rule: the click window is at least the view-through window."""
    if click_window < view_window:
        errors.append(
            ErrorDetail(
                INVALID,
                f"click_window ({click_window}) must be greater than or equal to"
                f" view_through_window ({view_window})",
                "click_window",
            )
        )


class _Checker:
    """One check per parameter kind; each appends its problems to `errors`."""

    def __init__(self, params: Mapping[str, str], errors: list[ErrorDetail]):
        self.params = params
        self.errors = errors

    def invalid(self, name: str, message: str) -> None:
        self.errors.append(ErrorDetail(INVALID, message, name))

    def required(self, name: str) -> str | None:
        value = self.params.get(name)
        if not value:
            self.errors.append(ErrorDetail(MISSING, f"{name} is required", name))
            return None
        return value

    def optional(self, name: str) -> str | None:
        value = self.params.get(name)
        if value == "":
            self.invalid(name, f"{name} must not be empty")
            return None
        return value

    def choice(self, name: str, value: str | None, allowed: Any) -> str | None:
        if value is None:
            return None
        if value not in allowed:
            shown = ", ".join(sorted(allowed)) if len(allowed) <= 5 else "the documented values"
            self.invalid(name, f"Expected one of {shown}, got {_clip(value)} for {name}")
            return None
        return value

    def time(self, name: str, value: str | None) -> int | None:
        if value is None:
            return None
        moment = epoch_ms(value)
        if moment is None:
            self.invalid(
                name,
                f"Expected time as yyyy-MM-ddTHH:mm:ss.SSSZ (UTC), got {_clip(value)} for {name}",
            )
        return moment

    def device_id(self, name: str, value: str | None) -> str | None:
        if value is None:
            return None
        if _DEVICE_ID.fullmatch(value) is None or "," in value:
            self.invalid(name, f"{name} must be 1..{MAX_DEVICE_ID_CHARS} printable characters")
            return None
        if _RAW_AD_ID.fullmatch(value) is not None:
            # Never echo it: it is a raw advertising id, personal data.
            self.invalid(name, f"{name} is a raw advertising id: send its HMAC-SHA256")
            return None
        return value

    def extra_device_ids(self, value: str | None) -> tuple[str, ...]:
        if value is None:
            return ()
        ids = value.split(",")
        if len(ids) > MAX_EXTRA_DEVICE_IDS:
            self.invalid("extra_device_ids", f"At most {MAX_EXTRA_DEVICE_IDS} extra_device_ids")
            return ()
        checked = [self.device_id("extra_device_ids", i.strip()) for i in ids]
        return tuple(i for i in checked if i is not None)

    def window(self, name: str, allowed: tuple[int, ...]) -> int | None:
        value = self.optional(name)
        if value is None:
            return None
        if value.isascii() and value.isdigit() and int(value) in allowed:
            return int(value)
        shown = ", ".join(str(d) for d in allowed)
        self.invalid(name, f"Expected one of {shown}, got {_clip(value)} for {name}")
        return None

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.optional(name)
        if value is None:
            return None
        if _DIGITS.fullmatch(value) is None or not low <= int(value) <= high:
            self.invalid(
                name, f"Expected integer from {low} to {high}, got {_clip(value)} for {name}"
            )
            return None
        return int(value)

    def boolean(self, name: str) -> bool | None:
        value = self.optional(name)
        if value is None or value in ("true", "false"):
            return value == "true" if value is not None else None
        self.invalid(name, f"Expected true or false, got {_clip(value)} for {name}")
        return None

    def metadata(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        ip = self.optional("device_ip_address")
        if ip is not None:
            try:
                ipaddress.ip_address(ip)
                found["device_ip_address"] = ip
            except ValueError:
                self.invalid("device_ip_address", f"Expected IPv4 or IPv6 address, got {_clip(ip)}")
        for name, low, high in (
            ("level", 0, MAX_INT32),
            ("number_items", 1, MAX_INT32),
            ("price_micro", 0, MAX_INT64),
        ):
            number = self.integer(name, low, high)
            if number is not None:
                found[name] = number
        currency = self.optional("price_currency")
        if currency is not None:
            if is_currency(currency):
                found["price_currency"] = currency
            else:
                self.invalid(
                    "price_currency", f"Expected ISO 4217 currency code, got {_clip(currency)}"
                )
        paid = self.boolean("user_payment_info")
        if paid is not None:
            found["user_payment_info"] = paid
        return found


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
