"""`RELAY_DLQ_REDACT`: the dead-letter copy of an ingest failure without raw PII, redrivable.

By default a dead letter keeps the original input bytes (raw emails, phones, IP addresses;
device ids are always written as `hmac:<hashed id>`, see `relay.normalize.device_ids`): the
DLQ then needs the input topics' protection. With redaction on, the known PII fields of each
input format are rewritten in the dead-letter copy:

- raw email and phone -> their normalized hashes, in the field the adapter reads hashed
  values from (`hashed_email`, `hashed_phone_number`);
- device ids (IDFA/AdID) -> `hmac:<hashed_device_id>` in their own field, which every app
  adapter reads as already hashed (the MMP formats have no hashed field of their own);
- IP addresses, user agents and device ids X never receives (IDFV, Android id, ...) dropped;
- a value that cannot be hashed (a phone that is no phone number, a device id without a key
  or of the wrong shape) is dropped, not kept;
- a record that is not a JSON object has no field to keep: its value is dropped whole.

Which fields were rewritten is listed (names only) in the `relay.redacted` header. Redriven,
the record is hashed exactly as it would have been.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import NormalizeContext
from relay.normalize.device_ids import HASHED_PREFIX, hmac_device_id, normalize_device_id
from relay.normalize.identifiers import hash_email, hash_phone

Kind = Literal["email", "phone", "device", "drop"]
REDACTED_HEADER: Final = "relay.redacted"
WHOLE_VALUE: Final = "value"
# Device identifiers of MMP payloads that the relay never sends to X.
_OTHER_DEVICE_IDS: Final = ("idfv", "android_id", "imei", "oaid", "amazon_aid", "fire_adid")


@dataclass(frozen=True, slots=True)
class Rule:
    """A field at `path` (nested objects) holding PII, and where its hash goes (if hashed):
    another field (`hashed_field`), or the same field for device ids."""

    path: tuple[str, ...]
    field: str
    kind: Kind
    hashed_field: str | None = None


def _hashed(path: tuple[str, ...], field: str, kind: Kind, hashed_field: str) -> Rule:
    return Rule(path, field, kind, hashed_field)


def _device(path: tuple[str, ...], field: str) -> Rule:
    return Rule(path, field, "device", field)


def _dropped(path: tuple[str, ...], *fields: str) -> tuple[Rule, ...]:
    return tuple(Rule(path, f, "drop") for f in fields)


_USER_DATA: Final = ("user_data",)
_TRAITS: Final = ("context", "traits")

RULES: Final[dict[str, tuple[Rule, ...]]] = {
    "web": (
        _hashed((), "email", "email", "hashed_email"),
        _hashed((), "phone", "phone", "hashed_phone_number"),
        *_dropped((), "ip_address", "user_agent"),
    ),
    "mobile": (
        _device((), "device_id"),
        *_dropped((), "device_ip_address"),
    ),
    "appsflyer": (
        _device((), "idfa"),
        _device((), "advertising_id"),
        *_dropped((), "ip", "user_agent", *_OTHER_DEVICE_IDS),
    ),
    "adjust": (
        _device((), "idfa"),
        _device((), "gps_adid"),
        *_dropped((), "ip_address", "user_agent", *_OTHER_DEVICE_IDS),
    ),
    "branch": (
        _device(_USER_DATA, "idfa"),
        _device(_USER_DATA, "aaid"),
        *_dropped(_USER_DATA, "ip", "user_agent", *_OTHER_DEVICE_IDS),
    ),
    "segment": (
        _hashed(_TRAITS, "email", "email", "hashed_email"),
        _hashed(_TRAITS, "phone", "phone", "hashed_phone_number"),
        *_dropped(("context",), "ip", "userAgent"),
    ),
}


def hash_device_id(raw: str, ctx: NormalizeContext) -> str | None:
    """`hmac:<hashed_device_id>` of a raw id, as ingest hashes it; None if not hashable.

    A value already in that form stays; so does the all-zero id, which is no one's.
    """
    device_id = raw.strip()
    if device_id.startswith(HASHED_PREFIX):
        return device_id
    if not ctx.device_id_hmac_key:
        return None
    try:
        normalized = normalize_device_id(device_id, ctx.device_id_case, "device_id")
    except InvalidEvent:
        return None
    except DroppedEvent:
        return device_id
    return HASHED_PREFIX + hmac_device_id(normalized, ctx.device_id_hmac_key)


def _hasher(kind: Kind, ctx: NormalizeContext) -> Callable[[str], str | None]:
    if kind == "email":
        return hash_email
    if kind == "phone":

        def phone(raw: str) -> str | None:
            try:
                return hash_phone(raw, ctx.default_phone_region)
            except InvalidEvent:
                return None

        return phone
    if kind == "device":
        return lambda raw: hash_device_id(raw, ctx)
    return lambda raw: None


def _container(record: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = record
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def redact(value: bytes, fmt: str, ctx: NormalizeContext) -> tuple[bytes, list[str]]:
    """The redacted copy of an input record of format `fmt`, and the fields rewritten."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or fmt not in RULES:
        return b"", [WHOLE_VALUE]
    rewritten: list[str] = []
    for rule in RULES[fmt]:
        container = _container(record, rule.path)
        if container is None:
            continue
        # Adjust callbacks may keep the placeholder braces in their keys.
        for key in (rule.field, f"{{{rule.field}}}"):
            raw = container.get(key)
            if raw is None or raw == "":
                continue
            if rule.kind == "device" and isinstance(raw, str) and raw.startswith(HASHED_PREFIX):
                continue  # hashed already (ingest writes device ids so into every dead letter)
            del container[key]
            rewritten.append(".".join((*rule.path, key)))
            hashed = _hasher(rule.kind, ctx)(raw) if isinstance(raw, str) else None
            if hashed is not None and rule.hashed_field is not None:
                # A device id is hashed in place, under the key it came with.
                container[key if rule.kind == "device" else rule.hashed_field] = hashed
    return orjson.dumps(record), rewritten
