"""The management resources a sandbox starts with, from its config file.

    [[app_event_tags]]                  # one tag per conversion type listed
    app_store_identifier = "333903271"  # os_type and account_id default to the app's
    conversion_types = ["PURCHASE"]     # or "*": every type the app has no other tag for
    post_engagement_attribution_window = 7
    post_view_attribution_window = 1
    id = "jhp"                          # optional, only with a single conversion type

    [[app_lists]]                       id?, account_id, name, app_store_identifiers
    [[app_event_provider_configurations]]  id?, account_id, provider_advertiser_id

A seed is an item as the API shows it (timestamps from the config or SEEDED_AT); items
without an `id` get one from the store when the sandbox starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from relay.sandbox.mact_params import (
    CLICK_WINDOWS,
    CONVERSION_TYPES,
    OS_TYPES,
    VIEW_THROUGH_WINDOWS,
)

APP_EVENT_TAGS: Final = "app_event_tags"
APP_LISTS: Final = "app_lists"
PROVIDER_CONFIGURATIONS: Final = "app_event_provider_configurations"
SEEDED_AT: Final = "2026-01-05T09:00:00Z"
NEW_TAG_CLICK_WINDOW: Final = 30  # X's defaults for a new tag
NEW_TAG_VIEW_WINDOW: Final = 1
DEFAULT_DEEP_LINK_SCHEME: Final = "https://"  # what X shows for a tag created without one
PROVIDER_NAME: Final = "RELAY_SANDBOX"
ALL_OTHER_TYPES: Final = "*"

Item = dict[str, Any]
Apps = Mapping[str, tuple[str, str]]  # store id -> (os_type, account_id)


@dataclass(frozen=True, slots=True)
class Seed:
    kind: str
    account_id: str
    item: Item


def app_os_type(store_id: str) -> str:
    """How X shows an app list's app: iOS store ids are numbers, Android ones package names."""
    return "iOS" if store_id.isdigit() else "Android"


def _text(entry: Mapping[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = entry.get(name, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {name} must be a non-empty string")
    return value


def _choice(entry: Mapping[str, Any], name: str, options: tuple[int, ...], default: int) -> int:
    value = entry.get(name, default)
    if type(value) is not int or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}")
    return value


def _stamps(entry: Mapping[str, Any]) -> Item:
    created = str(entry.get("created_at", SEEDED_AT))
    return {"created_at": created, "updated_at": str(entry.get("updated_at", created))}


def _tags(raw: list[Any], apps: Apps) -> list[Seed]:
    entries: list[tuple[Mapping[str, Any], str, str, str, list[str] | None]] = []
    for index, entry in enumerate(raw):
        where = f"app_event_tags[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table")
        store_id = _text(entry, "app_store_identifier", where)
        known = apps.get(store_id)
        os_type = _text(entry, "os_type", where, known[0] if known else None)
        if os_type not in OS_TYPES:
            raise ValueError(f"{where}: os_type must be IOS or ANDROID")
        account = _text(entry, "account_id", where, known[1] if known else None)
        types = entry.get("conversion_types", [entry.get("conversion_type")])
        if types == ALL_OTHER_TYPES:
            entries.append((entry, store_id, os_type, account, None))
            continue
        if not isinstance(types, list) or not types or not set(types) <= CONVERSION_TYPES:
            raise ValueError(f"{where}: conversion_types must list X's conversion types or be *")
        if "id" in entry and len(types) != 1:
            raise ValueError(f"{where}: an id names one tag: give a single conversion type")
        entries.append((entry, store_id, os_type, account, [str(t) for t in types]))
    named: dict[tuple[str, str], set[str]] = {}
    for _, store_id, _, account, types in entries:
        named.setdefault((account, store_id), set()).update(types or ())
    seeds = []
    for entry, store_id, os_type, account, types in entries:
        if types is None:
            types = sorted(CONVERSION_TYPES - named[account, store_id])
        for conversion_type in types:
            item: Item = {
                "app_store_identifier": store_id,
                "os_type": os_type,
                "conversion_type": conversion_type,
                "provider_app_event_id": entry.get("provider_app_event_id"),
                "provider_app_event_name": entry.get("provider_app_event_name"),
                "deep_link_scheme": entry.get("deep_link_scheme", DEFAULT_DEEP_LINK_SCHEME),
                "post_engagement_attribution_window": _choice(
                    entry, "post_engagement_attribution_window", CLICK_WINDOWS, NEW_TAG_CLICK_WINDOW
                ),
                "post_view_attribution_window": _choice(
                    entry, "post_view_attribution_window", VIEW_THROUGH_WINDOWS, NEW_TAG_VIEW_WINDOW
                ),
                "retargeting_enabled": bool(entry.get("retargeting_enabled", True)),
                "status": "TRACKING",
                "last_tracked_at": entry.get("last_tracked_at"),
            }
            if "id" in entry:
                item["id"] = str(entry["id"])
            seeds.append(Seed(APP_EVENT_TAGS, account, {**item, **_stamps(entry)}))
    return seeds


def _app_lists(raw: list[Any]) -> list[Seed]:
    seeds = []
    for index, entry in enumerate(raw):
        where = f"app_lists[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table")
        ids = entry.get("app_store_identifiers")
        if not isinstance(ids, list) or not ids:
            raise ValueError(f"{where}: app_store_identifiers must be a non-empty list")
        item: Item = {
            "name": _text(entry, "name", where),
            "apps": [{"app_store_identifier": str(a), "os_type": app_os_type(str(a))} for a in ids],
        }
        if "id" in entry:
            item["id"] = str(entry["id"])
        seeds.append(Seed(APP_LISTS, _text(entry, "account_id", where), {**item, **_stamps(entry)}))
    return seeds


def _provider_configurations(raw: list[Any]) -> list[Seed]:
    seeds = []
    accounts: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"app_event_provider_configurations[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table")
        account = _text(entry, "account_id", where)
        if account in accounts:
            raise ValueError(f"{where}: X allows one provider configuration per account")
        accounts.add(account)
        advertiser = _text(entry, "provider_advertiser_id", where)
        item: Item = {
            "provider_name": _text(entry, "provider_name", where, PROVIDER_NAME),
            "provider_advertiser_id": advertiser,
            "provider_advertiser_identifier": advertiser,
        }
        if "id" in entry:
            item["id"] = str(entry["id"])
        seeds.append(Seed(PROVIDER_CONFIGURATIONS, account, {**item, **_stamps(entry)}))
    return seeds


def parse_seeds(data: Mapping[str, Any], apps: Apps) -> tuple[Seed, ...]:
    """Every seeded item of the config file; ValueError naming the first bad entry."""
    parts: list[Seed] = []
    for name, parse in (
        (APP_EVENT_TAGS, lambda raw: _tags(raw, apps)),
        (APP_LISTS, _app_lists),
        (PROVIDER_CONFIGURATIONS, _provider_configurations),
    ):
        raw = data.get(name)
        if raw is None:
            continue
        if not isinstance(raw, list):
            raise ValueError(f"{name} must be a list of tables")
        parts.extend(parse(raw))
    return tuple(parts)
