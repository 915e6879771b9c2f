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


def _web_set(payload: Mapping[str, Any]) -> set[str]:
    present: set[str] = set()
    for entry in payload.get("identifiers") or ():
        if not isinstance(entry, Mapping):
            continue
        if entry.get("twclid"):
            present.add("twclid")
        if entry.get("hashed_email"):
            present.add("email")
        if entry.get("hashed_phone_number"):
            present.add("phone")
        if entry.get("ip_address") and entry.get("user_agent"):
            present.add("ip_ua")
    return present


def _app_set(payload: Mapping[str, Any]) -> set[str]:
    present: set[str] = set()
    if payload.get("hashed_device_id"):
        present.add("device_id")
    if payload.get("device_ip_address") and payload.get("user_agent"):
        present.add("ip_ua")
    return present


def identifier_set(kind: str, payload: Mapping[str, Any]) -> str:
    """The label value for one delivered payload of `kind` (web or app)."""
    return label_for(_app_set(payload) if kind == "app" else _web_set(payload))


def is_weak(label: str) -> bool:
    return not STRONG.intersection(label.split("+"))
