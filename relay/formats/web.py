"""The canonical `web` format: one JSON object per web conversion (see event-formats.md).

Decisions where X's rules leave room:
- Opt-out fails closed: `consent.opt_out` or `limit_ad_tracking` with any value but absent,
  null or false drops the event.
- A raw `email`/`phone` wins over `hashed_email`/`hashed_phone_number`; the hashed fields are
  read only when the raw one is absent.
- Ids (pixel, event, account) must be base-36: the pixel id goes into X's URL path and the
  account id becomes the outbound record key.

Two implementations of one function: `adapt_web_checked` is the rule, field by field, with
the reason for each refusal; `adapt_web` is the hot path, one pass over a well-formed
record, and hands anything else (a refusal, a drop, an unusual type) to `adapt_web_checked`,
so that both always give the same event or the same error (a test compares them on random
records).
"""

from __future__ import annotations

from typing import Any, Final

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
from relay.observability.coverage import web_identifier_set

MAX_REMEMBERED_IDS: Final = 4096  # (pixel, account, event) as sent -> as checked


class _Fallback(Exception):
    """The record is not of the common shape: `adapt_web_checked` decides."""


def adapt_web(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    """A decoded `web` record -> one hashed X web conversion for its pixel (see
    `adapt_web_checked`, which gives the same answer)."""
    try:
        return _adapt_well_formed(record, ctx)
    except (_Fallback, InvalidEvent, DroppedEvent):
        return adapt_web_checked(record, ctx)


def _text(value: object) -> str | None:
    """`fields.string`: None for absent or blank; anything but a string: the checked path."""
    if value is None:
        return None
    if type(value) is not str:
        raise _Fallback
    return None if not value or value.isspace() else value


def _stripped(value: object) -> str | None:
    """`fields.trimmed_string`."""
    if value is None:
        return None
    if type(value) is not str:
        raise _Fallback
    return value.strip() or None


def _adapt_well_formed(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    # The same steps as adapt_web_checked, in its order, with the helpers inlined; any doubt
    # raises _Fallback, any refusal is left to the checked path to explain.
    if type(record) is not dict:
        raise _Fallback
    get = record.get
    consent = get("consent")
    if consent is not None:
        if type(consent) is not dict:
            raise _Fallback
        opt_out = consent.get("opt_out")
        if opt_out is not None and opt_out is not False:
            raise _Fallback  # a drop
    limit = get("limit_ad_tracking")
    if limit is not None and limit is not False:
        raise _Fallback

    sent = pixel, account, event = get("pixel_id"), get("account_id"), get("event_id")
    if (
        type(pixel) is not str
        or type(event) is not str
        or not (account is None or type(account) is str)
    ):
        raise _Fallback  # invalid whatever it is (and maybe not hashable)
    remembered = ctx.web_ids.get(sent)
    if remembered is None:
        remembered = _checked_ids(record, ctx)
        if len(ctx.web_ids) >= MAX_REMEMBERED_IDS:
            ctx.web_ids.clear()
        ctx.web_ids[sent] = remembered
    pixel_id, account_id, event_id, event_key = remembered

    email = _text(get("email"))
    phone = _text(get("phone"))
    hashed_email = hash_email(email) if email else hashed(record, "hashed_email")
    hashed_phone = (
        hash_phone(phone, ctx.default_phone_region)
        if phone
        else hashed(record, "hashed_phone_number")
    )
    twclid = _stripped(get("twclid"))
    ip_address = _stripped(get("ip_address"))
    user_agent = _stripped(get("user_agent"))
    identifiers: list[dict[str, str]] = []
    if twclid:
        identifiers.append({"twclid": twclid})
    if hashed_email:
        identifiers.append({"hashed_email": hashed_email})
    if hashed_phone:
        identifiers.append({"hashed_phone_number": hashed_phone})
    if ip_address:
        if user_agent:
            identifiers.append({"ip_address": ip_address, "user_agent": user_agent})
        elif not identifiers:
            raise _Fallback
        else:
            identifiers.append({"ip_address": ip_address})
    elif user_agent:
        if not identifiers:
            raise _Fallback
        identifiers.append({"user_agent": user_agent})
    elif not identifiers:
        raise _Fallback

    time_sent = get("conversion_time")
    if time_sent is None or (type(time_sent) is str and (not time_sent or time_sent.isspace())):
        raise _Fallback
    conversion_time = normalize_time(time_sent)
    value = _present(get("value"))
    if value is not None:
        value = normalize_amount(value, "value")
    currency = _present(get("price_currency"))
    if currency is not None:
        currency = normalize_currency(currency, "price_currency")
    if currency is None:
        currency = _present(get("currency"))
        if currency is not None:
            currency = normalize_currency(currency, "currency")
    conversion_id = _present(get("conversion_id"))
    if conversion_id is not None:
        if type(conversion_id) is not str:
            raise _Fallback
        conversion_id = conversion_id.strip()
    else:
        conversion_id = derive_conversion_id(
            pixel_id,
            event_key,
            conversion_time,
            twclid,
            hashed_email,
            hashed_phone,
            value,
            currency,
        )
    payload: dict[str, Any] = {
        "conversion_time": conversion_time,
        "event_id": event_id,
        "identifiers": identifiers,
        "conversion_id": conversion_id,
    }
    if value is not None:
        payload["value"] = value
    if currency is not None:
        payload["price_currency"] = currency
    number_items = _present(get("number_items"))
    if number_items is not None:
        payload["number_items"] = normalize_quantity(number_items, "number_items")
    description = _text(get("description"))
    if description is not None:
        payload["description"] = description
    if get("contents") is not None:
        raise _Fallback
    label = web_identifier_set(twclid, hashed_email, hashed_phone, ip_address, user_agent)
    return OutboundEvent("web", account_id, pixel_id, payload, identifiers=label)


def _present(value: object) -> Any:
    """`fields.present` of a value already read."""
    if type(value) is str and (not value or value.isspace()):
        return None
    return value


def _checked_ids(record: dict[str, Any], ctx: NormalizeContext) -> tuple[str, str, str, str]:
    """(pixel id, account id, event id as sent, the event's own id), checked as
    adapt_web_checked checks them."""
    pixel_id = base36(required(record, "pixel_id"), "pixel_id")
    account_id = account_for_pixel(present(record, "account_id"), pixel_id, ctx.mapping)
    event_id, event_key = event_of_pixel(required(record, "event_id"), pixel_id, ctx.mapping)
    return pixel_id, account_id, event_id, event_key


def adapt_web_checked(record: Any, ctx: NormalizeContext) -> OutboundEvent:
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
