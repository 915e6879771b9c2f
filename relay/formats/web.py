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

from typing import Any

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.formats.fields import (
    base36,
    hashed,
    id_text,
    optional,
    present,
    required,
    string,
    trimmed_string,
)
from relay.formats.web_common import account_for_pixel, contents, event_of_pixel
from relay.normalize.conversion_ids import derive_conversion_id
from relay.normalize.identifiers import hash_email, hash_phone, web_identifiers
from relay.normalize.money import normalize_amount, normalize_currency, normalize_quantity
from relay.normalize.timestamps import normalize_time


def adapt_web(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    """A decoded `web` record -> one hashed X web conversion for its pixel.

    Raises DroppedEvent("opted_out") before looking at anything else, and InvalidEvent for
    whatever X would reject.
    """
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    if _opted_out(record):
        raise DroppedEvent("opted_out")
    pixel_id = base36(required(record, "pixel_id"), "pixel_id")
    account_id = account_for_pixel(present(record, "account_id"), pixel_id, ctx.mapping)
    event_id, event_key = event_of_pixel(required(record, "event_id"), pixel_id, ctx.mapping)

    email = string(record, "email")
    phone = string(record, "phone")
    hashed_email = hash_email(email) if email else hashed(record, "hashed_email")
    hashed_phone = (
        hash_phone(phone, ctx.default_phone_region)
        if phone
        else hashed(record, "hashed_phone_number")
    )
    twclid = trimmed_string(record, "twclid")
    identifiers = web_identifiers(
        twclid=twclid,
        hashed_email=hashed_email,
        hashed_phone_number=hashed_phone,
        ip_address=trimmed_string(record, "ip_address"),
        user_agent=trimmed_string(record, "user_agent"),
    )

    conversion_time = normalize_time(required(record, "conversion_time"))
    value = optional(record, "value", normalize_amount)
    currency = optional(record, "price_currency", normalize_currency) or optional(
        record, "currency", normalize_currency
    )
    conversion_id = id_text(record, "conversion_id") or derive_conversion_id(
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
        ("number_items", optional(record, "number_items", normalize_quantity)),
        ("description", string(record, "description")),
        ("contents", contents(present(record, "contents"), "contents", _content)),
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


def _content(item: dict[str, Any], at: str) -> dict[str, Any]:
    return {
        "content_id": id_text(item, "content_id", at),
        "content_group_id": id_text(item, "content_group_id", at),
        "content_name": string(item, "content_name", at),
        "content_type": string(item, "content_type", at),
        "content_price": optional(item, "content_price", normalize_amount, at),
        "num_items": optional(item, "num_items", normalize_quantity, at),
    }
