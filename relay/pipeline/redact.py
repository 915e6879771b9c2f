"""`RELAY_DLQ_REDACT`: the dead-letter copy of an ingest failure without raw PII, redrivable.

By default a dead letter keeps the original input bytes (raw emails, phones, device ids,
IP addresses): the DLQ then needs the input topics' protection. With redaction on, the known
PII fields of each input format are rewritten in the dead-letter copy:

- raw email, phone and device id (IDFA/AdID) -> their normalized hashes, in the field the
  adapter reads hashed values from (`hashed_email`, `hashed_phone_number`,
  `hashed_device_id`), so a redriven record is hashed exactly as it would have been;
- IP addresses, user agents and device ids X never receives (IDFV, Android id, ...) dropped;
- a value that cannot be hashed (a phone that is no phone number, a device id without a key
  or of the wrong shape) is dropped, not kept;
- a record that is not a JSON object has no field to keep: its value is dropped whole.

Which fields were rewritten is listed (names only) in the `relay.redacted` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from relay.errors import InvalidEvent
from relay.formats.base import NormalizeContext
from relay.normalize.identifiers import hash_email, hash_phone

Kind = Literal["email", "phone", "device", "drop"]
REDACTED_HEADER: Final = "relay.redacted"
WHOLE_VALUE: Final = "value"
_UUID_SHAPE: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Device identifiers of MMP payloads that the relay never sends to X.
_OTHER_DEVICE_IDS: Final = ("idfv", "android_id", "imei", "oaid", "amazon_aid", "fire_adid")


@dataclass(frozen=True, slots=True)
class Rule:
    """A field at `path` (nested objects) holding PII, and where its hash goes (if hashed)."""

    path: tuple[str, ...]
    field: str
    kind: Kind
    hashed_field: str | None = None


def _hashed(path: tuple[str, ...], field: str, kind: Kind, hashed_field: str) -> Rule:
    return Rule(path, field, kind, hashed_field)


def _dropped(path: tuple[str, ...], *fields: str) -> tuple[Rule, ...]:
    return tuple(Rule(path, f, "drop") for f in fields)


_DEVICE: Final = "hashed_device_id"
_USER_DATA: Final = ("user_data",)
_TRAITS: Final = ("context", "traits")

RULES: Final[dict[str, tuple[Rule, ...]]] = {
    "web": (
        _hashed((), "email", "email", "hashed_email"),
        _hashed((), "phone", "phone", "hashed_phone_number"),
        *_dropped((), "ip_address", "user_agent"),
    ),
    "mobile": (
        _hashed((), "device_id", "device", _DEVICE),
        *_dropped((), "device_ip_address"),
    ),
    "appsflyer": (
        _hashed((), "idfa", "device", _DEVICE),
        _hashed((), "advertising_id", "device", _DEVICE),
        *_dropped((), "ip", "user_agent", *_OTHER_DEVICE_IDS),
    ),
    "adjust": (
        _hashed((), "idfa", "device", _DEVICE),
        _hashed((), "gps_adid", "device", _DEVICE),
        *_dropped((), "ip_address", "user_agent", *_OTHER_DEVICE_IDS),
    ),
    "branch": (
        _hashed(_USER_DATA, "idfa", "device", _DEVICE),
        _hashed(_USER_DATA, "aaid", "device", _DEVICE),
        *_dropped(_USER_DATA, "ip", "user_agent", *_OTHER_DEVICE_IDS),
    ),
    "segment": (
        _hashed(_TRAITS, "email", "email", "hashed_email"),
        _hashed(_TRAITS, "phone", "phone", "hashed_phone_number"),
        *_dropped(("context",), "ip", "userAgent"),
    ),
}


def hash_device_id(raw: str, key: bytes) -> str | None:
    """X's hashed_device_id (base64 HMAC-SHA256) of a UUID-shaped id; None if not hashable."""
    device_id = raw.strip()
    if not key or _UUID_SHAPE.fullmatch(device_id) is None:
        return None
    if not device_id.replace("-", "").strip("0"):
        return None  # the all-zero id means limited ad tracking: never hashed
    digest = hmac.new(key, device_id.encode("ascii"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


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
        return lambda raw: hash_device_id(raw, ctx.device_id_hmac_key)
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
            del container[key]
            rewritten.append(".".join((*rule.path, key)))
            hashed = _hasher(rule.kind, ctx)(raw) if isinstance(raw, str) else None
            if hashed is not None and rule.hashed_field is not None:
                container[rule.hashed_field] = hashed
    return orjson.dumps(record), rewritten
