"""The canonical `web` format: one JSON object per web conversion (see event-formats.md).

Decisions where X's rules leave room:
- Opt-out fails closed: `consent.opt_out` or `limit_ad_tracking` with any value but absent,
  null or false drops the event.
- A raw `email`/`phone` wins over `hashed_email`/`hashed_phone_number`; the hashed fields are
  read only when the raw one is absent.
- Ids (pixel, event, account) must be base-36: the pixel id goes into X's URL path and the
  account id becomes the outbound record key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from relay.config import MappingFile
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.normalize.conversion_ids import derive_conversion_id
from relay.normalize.identifiers import (
    check_sha256,
    hash_email,
    hash_phone,
    trimmed,
    web_identifiers,
)
from relay.normalize.money import normalize_amount, normalize_currency, normalize_quantity
from relay.normalize.timestamps import normalize_time

MAX_ID_CHARS: Final = 64

T = TypeVar("T")


def adapt_web(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    """A decoded `web` record -> one hashed X web conversion for its pixel.

    Raises DroppedEvent("opted_out") before looking at anything else, and InvalidEvent for
    whatever X would reject.
    """
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    if _opted_out(record):
        raise DroppedEvent("opted_out")
    pixel_id = _base36(_required(record, "pixel_id"), "pixel_id")
    account_id = _account_id(record, pixel_id, ctx.mapping)
    event_id, event_key = _event_id(record, pixel_id, ctx.mapping)

    email = _string(record, "email")
    phone = _string(record, "phone")
    hashed_email = hash_email(email) if email else _hashed(record, "hashed_email")
    hashed_phone = (
        hash_phone(phone, ctx.default_phone_region)
        if phone
        else _hashed(record, "hashed_phone_number")
    )
    twclid = _trimmed(record, "twclid")
    identifiers = web_identifiers(
        twclid=twclid,
        hashed_email=hashed_email,
        hashed_phone_number=hashed_phone,
        ip_address=_trimmed(record, "ip_address"),
        user_agent=_trimmed(record, "user_agent"),
    )

    conversion_time = normalize_time(_required(record, "conversion_time"))
    value = _optional(record, "value", normalize_amount)
    currency = _optional(record, "price_currency", normalize_currency) or _optional(
        record, "currency", normalize_currency
    )
    conversion_id = _id_text(record, "conversion_id") or derive_conversion_id(
        pixel_id, event_key, conversion_time, twclid, hashed_email, hashed_phone, value, currency
    )
    payload: dict[str, Any] = {
        "conversion_time": conversion_time,
        "event_id": event_id,
        "identifiers": identifiers,
        "conversion_id": conversion_id,
    }
    extras = (
        ("value", value),
        ("price_currency", currency),
        ("number_items", _optional(record, "number_items", normalize_quantity)),
        ("description", _string(record, "description")),
        ("contents", _contents(_present(record, "contents"))),
    )
    for key, extra in extras:
        if extra is not None:
            payload[key] = extra
    return OutboundEvent(kind="web", budget_key=account_id, target=pixel_id, payload=payload)


WEB_ADAPTER: Adapter = adapt_web


def _opted_out(record: dict[str, Any]) -> bool:
    consent = record.get("consent")
    opt_out = consent.get("opt_out") if isinstance(consent, dict) else None
    if not (_unset(opt_out) and _unset(record.get("limit_ad_tracking"))):
        return True
    if consent is not None and not isinstance(consent, dict):
        raise InvalidEvent("consent must be an object", field="consent")
    return False


def _unset(flag: object) -> bool:
    return flag is None or flag is False


def _account_id(record: dict[str, Any], pixel_id: str, mapping: MappingFile) -> str:
    given = _present(record, "account_id")
    mapped = mapping.account_for_pixel(pixel_id)
    if given is None:
        if mapped is None:
            raise InvalidEvent(
                f"pixel {pixel_id} is not in the mapping and the event has no account_id",
                field="pixel_id",
                error_class="unknown_pixel",
            )
        return mapped
    account_id = _base36(given, "account_id")
    if mapped is not None and account_id != mapped:
        raise InvalidEvent(
            f"account_id {account_id} does not own pixel {pixel_id} (the mapping says {mapped})",
            field="account_id",
        )
    return account_id


def _event_id(record: dict[str, Any], pixel_id: str, mapping: MappingFile) -> tuple[str, str]:
    """(event_id as sent, the event tag's own base-36 id)."""
    event_id = _required(record, "event_id")
    if not isinstance(event_id, str):
        raise InvalidEvent("event_id must be a string", field="event_id")
    event_id = event_id.strip()
    key = event_id
    if event_id.startswith("tw-"):
        prefix = f"tw-{pixel_id}-"
        if not event_id.startswith(prefix):
            raise InvalidEvent(
                f"event_id is not of the form tw-{pixel_id}-<event id>", field="event_id"
            )
        key = event_id[len(prefix) :]
    key = _base36(key, "event_id")
    pixel = mapping.pixels.get(pixel_id)
    if pixel is not None and pixel.event_ids and key not in pixel.event_ids:
        raise InvalidEvent(f"event_id {key} is not an event of pixel {pixel_id}", field="event_id")
    return event_id, key


def _base36(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"{field} must be a string", field=field)
    text = value.strip()
    if not (len(text) <= MAX_ID_CHARS and text.isascii() and text.isalnum()):
        raise InvalidEvent(f"{field} must be a base-36 id (letters and digits)", field=field)
    return text


def _present(obj: dict[str, Any], name: str) -> Any:
    """The field's value; None when absent, null or a blank string."""
    value = obj.get(name)
    if isinstance(value, str) and (not value or value.isspace()):
        return None
    return value


def _required(record: dict[str, Any], name: str) -> Any:
    value = _present(record, name)
    if value is None:
        raise InvalidEvent(f"{name} is required", field=name)
    return value


# `prefix` locates a field inside contents ("contents[0]."); it is joined to the name only
# when needed, so valid events build no labels.


def _string(obj: dict[str, Any], name: str, prefix: str = "") -> str | None:
    value = _present(obj, name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidEvent(f"{prefix}{name} must be a string", field=prefix + name)


def _trimmed(record: dict[str, Any], name: str) -> str | None:
    value = _string(record, name)
    return trimmed(value) if value else None


def _hashed(record: dict[str, Any], name: str) -> str | None:
    value = _string(record, name)
    return check_sha256(value, name) if value else None


def _id_text(obj: dict[str, Any], name: str, prefix: str = "") -> str | None:
    """An id that producers send as a string or an integer."""
    value = _present(obj, name)
    if value is None or isinstance(value, str):
        return value.strip() if value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidEvent(f"{prefix}{name} must be a string or an integer", field=prefix + name)


def _optional(
    obj: dict[str, Any], name: str, normalize: Callable[[object, str], T], prefix: str = ""
) -> T | None:
    value = _present(obj, name)
    return None if value is None else normalize(value, prefix + name)


def _contents(value: object) -> list[dict[str, Any]] | None:
    """X's contents array: known keys only, empty items and an empty array left out."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidEvent("contents must be a list", field="contents")
    contents: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        at = f"contents[{index}]."
        if not isinstance(item, dict):
            raise InvalidEvent(f"contents[{index}] must be an object", field=f"contents[{index}]")
        content = {
            "content_id": _id_text(item, "content_id", at),
            "content_group_id": _id_text(item, "content_group_id", at),
            "content_name": _string(item, "content_name", at),
            "content_type": _string(item, "content_type", at),
            "content_price": _optional(item, "content_price", normalize_amount, at),
            "num_items": _optional(item, "num_items", normalize_quantity, at),
        }
        content = {key: field for key, field in content.items() if field is not None}
        if content:
            contents.append(content)
    return contents or None
