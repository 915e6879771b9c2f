"""Match coverage: which identifiers a delivered event carries, as one bounded label value.

X gives no match-quality score, so the relay counts what it can see: the set of identifiers
in each delivered payload (never their values). The label is a "+"-joined subset of a fixed
list, so at most 2**5 values exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any, Final

# In this order in every label value.
IDENTIFIERS: Final = ("twclid", "email", "phone", "ip_ua", "device_id")
WEB_IDENTIFIERS: Final = ("twclid", "email", "phone", "ip_ua")
APP_IDENTIFIERS: Final = ("device_id", "ip_ua")
NONE: Final = "none"
# Without a click id or a device id X matches on hashed email/phone or IP + user agent only.
STRONG: Final = frozenset({"twclid", "device_id"})


def label_for(present: set[str]) -> str:
    return "+".join(name for name in IDENTIFIERS if name in present) or NONE


def all_labels(names: tuple[str, ...]) -> list[str]:
    """Every label value made of `names` (for initialising the series at 0)."""
    return [
        label_for(set(subset))
        for size in range(len(names) + 1)
        for subset in combinations(names, size)
    ]


# Delivery labels every event: a bit per field of X's payload, one table lookup per event.
_TWCLID, _EMAIL, _PHONE, _IP, _UA, _DEVICE = (1 << i for i in range(6))
_WEB_BITS: Final = {
    "twclid": _TWCLID,
    "hashed_email": _EMAIL,
    "hashed_phone_number": _PHONE,
    "ip_address": _IP,
    "user_agent": _UA,
}
_IP_UA: Final = _IP | _UA


def _label_of(mask: int) -> str:
    present = {
        name
        for name, bit in (
            ("twclid", _TWCLID),
            ("email", _EMAIL),
            ("phone", _PHONE),
            ("device_id", _DEVICE),
        )
        if mask & bit
    }
    if mask & _IP_UA == _IP_UA:  # IP and user agent count only as a pair
        present.add("ip_ua")
    return label_for(present)


_LABELS: Final = tuple(_label_of(mask) for mask in range(1 << 6))
LABELS: Final = frozenset(_LABELS)  # every label value there is


def web_identifier_set(
    twclid: object, email: object, phone: object, ip_address: object, user_agent: object
) -> str:
    """The label of a web payload with these identifiers (each: present when truthy), as
    `identifier_set` reads it from the payload; for the adapter that builds it."""
    mask = _TWCLID if twclid else 0
    if email:
        mask |= _EMAIL
    if phone:
        mask |= _PHONE
    if ip_address:
        mask |= _IP
    if user_agent:
        mask |= _UA
    return _LABELS[mask]


def _web_mask(payload: Mapping[str, Any]) -> int:
    # The payload is X's request body as ingest built it: identifiers hold no empty values.
    mask = 0
    bits = _WEB_BITS
    for entry in payload.get("identifiers") or ():
        if type(entry) is dict:
            for key in entry:
                mask |= bits.get(key, 0)
    return mask


# The same keys in the payload's JSON as the outbound codec carries it (orjson: compact, a
# key's closing quote right before its colon; inside a string value a quote is escaped, so
# `"twclid":` can only be a key). Scanning the bytes spares decoding each delivered payload.
_WEB_KEYS: Final = tuple((f'"{key}":'.encode(), bit) for key, bit in _WEB_BITS.items())


def _web_mask_of_json(payload: bytes) -> int:
    mask = 0
    for key, bit in _WEB_KEYS:
        if key in payload:
            mask |= bit
    return mask


def _app_mask(payload: Mapping[str, Any]) -> int:
    mask = _DEVICE if payload.get("hashed_device_id") else 0
    if payload.get("device_ip_address"):
        mask |= _IP
    if payload.get("user_agent"):
        mask |= _UA
    return mask


def identifier_set(kind: str, payload: Mapping[str, Any] | bytes | str) -> str:
    """The label value for one delivered payload of `kind` (web or app); a web payload may
    come as the outbound record's JSON bytes, or as its label already (a str of LABELS)."""
    if isinstance(payload, str):
        if payload not in LABELS:
            raise ValueError("not an identifier set label")
        return payload
    if isinstance(payload, bytes):
        if kind == "app":
            raise TypeError("app payloads are read decoded")
        return _LABELS[_web_mask_of_json(payload)]
    return _LABELS[_app_mask(payload) if kind == "app" else _web_mask(payload)]


def is_weak(label: str) -> bool:
    return not STRONG.intersection(label.split("+"))
