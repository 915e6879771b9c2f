"""X's rules for `POST /12/measurement/conversions/:pixel_id`, in plain Python.

All or nothing, like X: one invalid conversion fails the whole request with 400, and the
errors never say which conversion was at fault. Every distinct problem is reported (a
request may carry several errors). Where X's documents leave a rule open, this module is
strict, so that the relay cannot come to depend on leniency X may not have:
- unknown fields (in the body, a conversion, an identifier or a content) are rejected;
- amounts (`value`, `content_price`) are non-negative plain decimals, as string or number;
- JSON null counts as absent for optional fields, as missing for required ones;
- an empty identifier value is no identifier (X's guide), not an error;
- `ip_address` is dotted decimal (seed 004: four numbers 0-255 separated by periods) or an
  IPv6 address (X's MACT endpoints take both; the web guide shows only IPv4);
- `price_currency` is a current ISO 4217 code.

Per conversion this costs a few microseconds: type checks by identity, two precompiled
regular expressions, and no objects built. The common valid requests are accepted by
validation_fast.py in one pass instead; this module is the reference it is tested against,
and gives every error.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from relay.sandbox.config import SandboxPixel
from relay.sandbox.currencies import is_currency
from relay.sandbox.responses import ErrorDetail, XApiError

MAX_CONVERSIONS: Final = 500
MAX_ERRORS: Final = 50  # a request of 500 bad conversions gets a readable answer
MAX_QUANTITY: Final = 2**31 - 1  # X's integers are 32-bit
INVALID: Final = "INVALID_PARAMETER"
MISSING: Final = "MISSING_PARAMETER"

_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_AMOUNT: Final = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_DOTTED_DECIMAL: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)

_BODY_FIELDS: Final = frozenset({"conversions"})
_FIELDS: Final = frozenset(
    {
        "conversion_time",
        "event_id",
        "identifiers",
        "conversion_id",
        "value",
        "price_currency",
        "number_items",
        "description",
        "contents",
    }
)
_HASHED: Final = frozenset({"hashed_email", "hashed_phone_number"})
_CONTENT_TEXT: Final = ("content_id", "content_group_id", "content_name", "content_type")
_CONTENT_FIELDS: Final = frozenset({*_CONTENT_TEXT, "content_price", "num_items"})

_JSON_TYPES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
_NOT_AN_OBJECT: Final = ErrorDetail(INVALID, "Each conversion must be an object", "conversions")
_NO_IDENTIFIER: Final = ErrorDetail(
    INVALID,
    "At least one identifier is required: twclid, hashed_email or hashed_phone_number"
    " (ip_address and user_agent only count together with another identifier)",
    "identifiers",
)
_IP_SYNTAX: Final = ErrorDetail(
    INVALID,
    "ip_address must be an IPv4 address in dotted decimal (e.g. 8.25.197.25) or an IPv6 address",
    "ip_address",
)
_SHARED_OBJECT: Final = ErrorDetail(
    INVALID,
    "Each identifier must be in its own object (only ip_address and user_agent may share one)",
    "identifiers",
)


@dataclass(frozen=True, slots=True)
class ValidRequest:
    """A request X accepts: its conversions, and per conversion the key X deduplicates on
    (pixel, event tag and conversion_id; None without a conversion_id)."""

    conversions: list[dict[str, Any]]
    dedup_keys: list[str | None]


def validate_web_request(body: bytes, pixel: SandboxPixel) -> ValidRequest:
    """The request body for `pixel`, or XApiError(400) with every distinct problem."""
    params = {"account_id": pixel.account_id}
    conversions = _conversions(body, params)
    errors: list[ErrorDetail] = []
    keys: list[str | None] = []
    tw_prefix = f"tw-{pixel.id}-"
    for conversion in conversions:
        keys.append(_check_conversion(conversion, pixel, tw_prefix, errors))
    if errors:
        raise XApiError(400, list(dict.fromkeys(errors))[:MAX_ERRORS], params)
    return ValidRequest(conversions, keys)


def _conversions(body: bytes, params: dict[str, str]) -> list[Any]:
    def fail(code: str, message: str) -> XApiError:
        return XApiError.single(400, code, message, "conversions", params)

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise fail(INVALID, "The request body must be a JSON object") from None
    if type(document) is not dict:
        raise fail(INVALID, "The request body must be a JSON object")
    unknown = [_unknown(key) for key in document if key not in _BODY_FIELDS]
    if unknown:
        raise XApiError(400, unknown, params)
    conversions = document.get("conversions")
    if conversions is None:
        raise fail(MISSING, "conversions is required")
    if type(conversions) is not list:
        raise fail(INVALID, f"Expected array, got {_shown(conversions)} for conversions")
    if not conversions:
        raise fail(INVALID, "At least one conversion is required")
    if len(conversions) > MAX_CONVERSIONS:
        raise fail(INVALID, f"Conversion count limit is {MAX_CONVERSIONS}")
    return conversions


def _check_conversion(
    conversion: Any, pixel: SandboxPixel, tw_prefix: str, errors: list[ErrorDetail]
) -> str | None:
    """Appends the conversion's problems to `errors`; returns its dedup key."""
    if type(conversion) is not dict:
        errors.append(_NOT_AN_OBJECT)
        return None
    if not _FIELDS.issuperset(conversion):
        errors.extend(_unknown(key) for key in conversion if key not in _FIELDS)

    time = conversion.get("conversion_time")
    if time is None:
        errors.append(_missing("conversion_time"))
    elif type(time) is not str or not valid_time(time):
        errors.append(_invalid("conversion_time", "time as yyyy-MM-ddTHH:mm:ss.SSSZ (UTC)", time))

    tag = _event_tag(conversion.get("event_id"), pixel, tw_prefix, errors)

    identifiers = conversion.get("identifiers")
    if identifiers is None:
        errors.append(_missing("identifiers"))
    else:
        _check_identifiers(identifiers, errors)

    conversion_id = conversion.get("conversion_id")
    if conversion_id is not None and type(conversion_id) is not str:
        errors.append(_invalid("conversion_id", "string", conversion_id))
    value = conversion.get("value")
    if value is not None and not is_amount(value):
        errors.append(_invalid("value", "non-negative decimal", value))
    currency = conversion.get("price_currency")
    if currency is not None and not _is_currency(currency):
        errors.append(_invalid("price_currency", "ISO 4217 currency code", currency))
    items = conversion.get("number_items")
    if items is not None and not _is_quantity(items):
        errors.append(_invalid("number_items", "integer greater than 0", items))
    description = conversion.get("description")
    if description is not None and type(description) is not str:
        errors.append(_invalid("description", "string", description))
    contents = conversion.get("contents")
    if contents is not None:
        _check_contents(contents, errors)

    if tag is None or not conversion_id or type(conversion_id) is not str:
        return None
    return f"{pixel.id}\x1f{tag}\x1f{conversion_id}"


def _event_tag(
    event_id: Any, pixel: SandboxPixel, tw_prefix: str, errors: list[ErrorDetail]
) -> str | None:
    """The event tag's own id (`o87ne` for `o87ne` or `tw-<pixel>-o87ne`) if it is the pixel's."""
    if event_id is None:
        errors.append(_missing("event_id"))
        return None
    if type(event_id) is str:
        tag = event_id[len(tw_prefix) :] if event_id.startswith(tw_prefix) else event_id
        if tag in pixel.event_ids:
            return tag
        errors.append(
            ErrorDetail(
                INVALID,
                f"event_id {_clip(event_id)} is not an event of pixel {pixel.id}",
                "event_id",
            )
        )
        return None
    errors.append(_invalid("event_id", "string", event_id))
    return None


def _check_identifiers(identifiers: Any, errors: list[ErrorDetail]) -> None:
    if type(identifiers) is not list or not identifiers:
        errors.append(_not_a("identifiers", "non-empty array of objects", identifiers))
        return
    found = len(errors)
    primary = ip_address = user_agent = False
    for item in identifiers:
        if type(item) is not dict:
            errors.append(_not_a("identifiers", "object", item))
            continue
        if len(item) != 1 and not (
            len(item) == 2 and "ip_address" in item and "user_agent" in item
        ):
            errors.append(_SHARED_OBJECT)
        for key, value in item.items():
            if key in _HASHED:
                if type(value) is not str:
                    errors.append(_not_a(key, "SHA-256 hash", value))
                elif value and _SHA256.fullmatch(value) is None:
                    errors.append(
                        ErrorDetail(
                            INVALID, f"{key} ({_clip(value)}) is not a valid SHA-256 hash", key
                        )
                    )
                elif value:
                    primary = True
            elif key in ("twclid", "ip_address", "user_agent"):
                if type(value) is not str:
                    errors.append(_not_a(key, "string", value))
                elif value and not value.isspace():
                    if key == "twclid":
                        primary = True
                    elif key == "ip_address":
                        if _is_ip_address(value.strip()):
                            ip_address = True
                        else:  # never echoed: an IP address is personal data
                            errors.append(_IP_SYNTAX)
                    else:
                        user_agent = True
            else:
                errors.append(
                    ErrorDetail(INVALID, f"Unknown identifier {_clip(key)}", "identifiers")
                )
    # X's guide: an IP address or user agent needs a second identifier, which may be the other.
    if len(errors) == found and not (primary or (ip_address and user_agent)):
        errors.append(_NO_IDENTIFIER)


def _check_contents(contents: Any, errors: list[ErrorDetail]) -> None:
    if type(contents) is not list:
        errors.append(_invalid("contents", "array of objects", contents))
        return
    for content in contents:
        if type(content) is not dict:
            errors.append(_invalid("contents", "object", content))
            continue
        if not _CONTENT_FIELDS.issuperset(content):
            errors.extend(
                ErrorDetail(INVALID, f"Unknown content field {_clip(key)}", "contents")
                for key in content
                if key not in _CONTENT_FIELDS
            )
        for name in _CONTENT_TEXT:
            text = content.get(name)
            if text is not None and type(text) is not str:
                errors.append(_invalid(name, "string", text))
        price = content.get("content_price")
        if price is not None and not is_amount(price):
            errors.append(_invalid("content_price", "non-negative decimal", price))
        items = content.get("num_items")
        if items is not None and not _is_quantity(items):
            errors.append(_invalid("num_items", "integer greater than 0", items))


def valid_time(text: str) -> bool:
    if _TIME.fullmatch(text) is None:
        return False
    try:
        datetime.fromisoformat(text)  # the calendar: no February 30, no hour 24
    except ValueError:
        return False
    return True


def is_amount(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return _AMOUNT.fullmatch(value) is not None
    return (kind is int or kind is float) and value >= 0  # orjson never yields NaN or inf


def _is_ip_address(text: str) -> bool:
    if _DOTTED_DECIMAL.fullmatch(text) is not None:
        return True
    if ":" not in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_currency(value: Any) -> bool:
    return type(value) is str and is_currency(value)


def _is_quantity(value: Any) -> bool:
    return type(value) is int and 0 < value <= MAX_QUANTITY


def _missing(name: str) -> ErrorDetail:
    return ErrorDetail(MISSING, f"{name} is required", name)


def _invalid(name: str, expected: str, got: Any) -> ErrorDetail:
    return ErrorDetail(INVALID, f"Expected {expected}, got {_shown(got)} for {name}", name)


def _not_a(name: str, expected: str, got: Any) -> ErrorDetail:
    """Like `_invalid`, naming only the JSON type: identifier values are personal data."""
    return ErrorDetail(INVALID, f"Expected {expected}, got {_json_type(got)} for {name}", name)


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "value")


def _unknown(key: str) -> ErrorDetail:
    return ErrorDetail(INVALID, f"Unknown parameter {_clip(key)}", _clip(key))


def _shown(value: Any) -> str:
    """A value as JSON, clipped: messages stay short whatever was sent."""
    return _clip(orjson.dumps(value).decode())


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
