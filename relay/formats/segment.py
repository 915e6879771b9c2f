"""Segment track events (`segment`), for the WEB path: each becomes an X web conversion.

Quirks handled (event-formats.md): `conversion_id` <- `properties.order_id`, else the
`messageId`; twclid from `properties.twclid`, else the `twclid` query parameter of
`context.page.url` (or `context.page.search`); email and phone from `context.traits`;
IP and user agent from `context.ip` / `context.userAgent`; `products[]` -> contents.
Decisions:
- The event name -> event_id map is per pixel (`[[pixels]] segment_events`). The pixel is
  the record's `pixel_id` (top level or in `properties`); without one, the only pixel whose
  map has the event name.
- A call other than `track` is `not_a_conversion`; an event name in no pixel's map is
  `unmapped_event` ("" in a map marks a name that is not a conversion).
- The value is the first of `revenue`, `total`, `value`; `number_items` the sum of the
  products' quantities.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from relay.config import MappingFile
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent
from relay.formats.event_maps import SEGMENT_NOT_CONVERSIONS
from relay.formats.fields import (
    base36,
    id_text,
    obj,
    optional,
    present,
    required,
    string,
    trimmed_string,
)
from relay.formats.web_common import account_for_pixel, contents, event_of_pixel
from relay.normalize.identifiers import hash_email, hash_phone, web_identifiers
from relay.normalize.money import normalize_amount, normalize_currency, normalize_quantity
from relay.normalize.timestamps import normalize_time

PROPS: Final = "properties."
CONTEXT: Final = "context."
VALUE_FIELDS: Final = ("revenue", "total", "value")


def adapt_segment(record: Any, ctx: NormalizeContext) -> OutboundEvent:
    if not isinstance(record, dict):
        raise InvalidEvent("event must be a JSON object")
    call = string(record, "type")
    if call is not None and call.strip().lower() in SEGMENT_NOT_CONVERSIONS:
        raise DroppedEvent("not_a_conversion")
    name = string(record, "event")
    if name is None:
        raise InvalidEvent("event is required", field="event")
    name = name.strip()
    props = obj(record, "properties")
    context = obj(record, "context")
    pixel_id, event_id = _pixel_and_event(record, props, name, ctx.mapping)
    account_id = account_for_pixel(None, pixel_id, ctx.mapping)
    event_id, _ = event_of_pixel(event_id, pixel_id, ctx.mapping, "event")

    traits = obj(context, "traits", CONTEXT)
    email = string(traits, "email", CONTEXT + "traits.")
    phone = string(traits, "phone", CONTEXT + "traits.")
    try:
        hashed_phone = hash_phone(phone, ctx.default_phone_region) if phone else None
    except InvalidEvent as bad:  # name the field where Segment has it
        raise InvalidEvent(bad.message, field="context.traits.phone") from None
    identifiers = web_identifiers(
        twclid=_twclid(props, context),
        hashed_email=hash_email(email) if email else None,
        hashed_phone_number=hashed_phone,
        ip_address=trimmed_string(context, "ip", CONTEXT),
        user_agent=trimmed_string(context, "userAgent", CONTEXT),
    )
    conversion_id = id_text(props, "order_id", PROPS) or id_text(record, "messageId")
    if conversion_id is None:
        raise InvalidEvent("properties.order_id or messageId is required", field="messageId")
    payload: dict[str, Any] = {
        "conversion_time": normalize_time(required(record, "timestamp"), "timestamp"),
        "event_id": event_id,
        "identifiers": identifiers,
        "conversion_id": conversion_id,
    }
    value_field = next((f for f in VALUE_FIELDS if present(props, f) is not None), None)
    items = contents(present(props, "products"), PROPS + "products", _product)
    extras = (
        ("value", value_field and optional(props, value_field, normalize_amount, PROPS)),
        ("price_currency", optional(props, "currency", normalize_currency, PROPS)),
        ("number_items", sum(i.get("num_items", 0) for i in items or ()) or None),
        ("contents", items),
    )
    for key, extra in extras:
        if extra is not None:
            payload[key] = extra
    return OutboundEvent(kind="web", budget_key=account_id, target=pixel_id, payload=payload)


SEGMENT_ADAPTER: Adapter = adapt_segment


def _pixel_and_event(
    record: dict[str, Any], props: dict[str, Any], name: str, mapping: MappingFile
) -> tuple[str, str]:
    given = present(record, "pixel_id") or present(props, "pixel_id")
    if given is not None:
        pixel_id = base36(given, "pixel_id")
        pixel = mapping.pixels.get(pixel_id)
        if pixel is None:
            raise InvalidEvent(
                f"pixel {pixel_id} is not in the mapping file",
                field="pixel_id",
                error_class="unknown_pixel",
            )
        candidates = [(pixel_id, pixel.segment_events.get(name))]
    else:
        candidates = [
            (p.id, p.segment_events[name])
            for p in mapping.pixels.values()
            if name in p.segment_events
        ]
        if len(candidates) > 1:
            raise InvalidEvent(
                f"several pixels map the event {name!r}: set pixel_id",
                field="pixel_id",
                error_class="unknown_pixel",
            )
    if not candidates or candidates[0][1] is None:
        raise DroppedEvent("unmapped_event")
    pixel_id, event_id = candidates[0]
    if not event_id:
        raise DroppedEvent("not_a_conversion")
    return pixel_id, event_id


def _twclid(props: dict[str, Any], context: dict[str, Any]) -> str | None:
    twclid = trimmed_string(props, "twclid", PROPS)
    if twclid:
        return twclid
    page = obj(context, "page", CONTEXT)
    for name in ("url", "search"):
        text = string(page, name, CONTEXT + "page.")
        if text:
            query = urlsplit(text).query if name == "url" else text.lstrip("?")
            found = parse_qs(query).get("twclid")
            if found and found[0].strip():
                return found[0].strip()
    return None


def _product(item: dict[str, Any], at: str) -> dict[str, Any]:
    return {
        "content_id": id_text(item, "product_id", at) or id_text(item, "sku", at),
        "content_name": string(item, "name", at),
        "content_type": string(item, "category", at),
        "content_price": optional(item, "price", normalize_amount, at),
        "num_items": optional(item, "quantity", normalize_quantity, at),
    }
