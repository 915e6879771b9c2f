"""The mapping file a scenario gives both the sandbox and the relay: the packaged defaults
(four accounts the demo token may use), or one written for many accounts.

A written file keeps the defaults' credentials and demo apps and adds `accounts` ad accounts,
one pixel each, all of them usable by the token (the sandbox authorizes accounts per token).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.config import default_mapping_path, load_mapping, read_document
from relay.kafka import partition_for_key
from relay.tools.produce import usable_pixels

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class BenchPixel:
    id: str
    account_id: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BenchApp:
    id: str
    os_type: str
    account_id: str


@dataclass(frozen=True)
class BenchConfig:
    path: Path
    pixels: tuple[BenchPixel, ...]
    apps: tuple[BenchApp, ...]


def _b36(n: int, width: int) -> str:
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = BASE36[r] + digits
    return digits.rjust(width, "0")


def account_id(n: int) -> str:
    return "18cb" + _b36(n, 5)


def _apps(raw: dict[str, Any]) -> tuple[BenchApp, ...]:
    return tuple(
        BenchApp(str(a["id"]), str(a["os_type"]), str(a["account_id"]))
        for a in raw.get("apps", [])
        if str(a["account_id"]) in raw["credentials"].get("accounts", [])
    )


def default_config() -> BenchConfig:
    """The packaged defaults: the token's four accounts, one pixel each, two demo apps."""
    path = default_mapping_path()
    pixels = usable_pixels(load_mapping(path))
    return BenchConfig(
        path,
        tuple(BenchPixel(p.id, p.account_id, p.event_ids) for p in pixels),
        _apps(read_document(path)),
    )


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def write_config(path: Path, accounts: Iterable[str]) -> BenchConfig:
    """A mapping file with one pixel per account (plus the defaults' demo apps)."""
    base = read_document(default_mapping_path())
    creds = base["credentials"]
    apps = _apps(base)
    ids = list(dict.fromkeys(accounts))
    app_accounts = sorted({a.account_id for a in apps} - set(ids))
    pixels = tuple(
        BenchPixel("bp" + _b36(i, 4), acc, ("be" + _b36(i, 4),)) for i, acc in enumerate(ids)
    )
    lines = ["[credentials]"]
    lines += [f'{k} = "{creds[k]}"' for k in sorted(creds) if k != "accounts"]
    lines.append(f"accounts = {_toml_list([*ids, *app_accounts])}")
    for acc in [*ids, *app_accounts]:
        lines += ["", "[[accounts]]", f'id = "{acc}"']
    for p in pixels:
        lines += ["", "[[pixels]]", f'id = "{p.id}"', f'account_id = "{p.account_id}"']
        lines += [f"event_ids = {_toml_list(p.event_ids)}"]
    for a in apps:
        lines += ["", "[[apps]]", f'id = "{a.id}"', f'os_type = "{a.os_type}"']
        lines.append(f'account_id = "{a.account_id}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return BenchConfig(path, pixels, apps)


def accounts_on_one_partition(count: int, partitions: int) -> list[str]:
    """`count` account ids whose records land on the same partition (Kafka's partitioner)."""
    first = account_id(0)
    target = partition_for_key(first.encode(), partitions)
    found = [first]
    n = 1
    while len(found) < count:
        candidate = account_id(n)
        if partition_for_key(candidate.encode(), partitions) == target:
            found.append(candidate)
        n += 1
    return found


def write_app_config(path: Path, accounts: int) -> BenchConfig:
    """A mapping file for the app path over `accounts` ad accounts: the defaults' credentials
    and demo apps, plus one Android app per added account, each with the provider
    configuration and the app event tags `conversion_event` needs."""
    base = read_document(default_mapping_path())
    creds = base["credentials"]
    demo_apps = _apps(base)
    added = [account_id(i) for i in range(max(0, accounts - 1))]
    ids = list(dict.fromkeys([*creds.get("accounts", []), *added]))
    lines = ["[credentials]"]
    lines += [f'{k} = "{creds[k]}"' for k in sorted(creds) if k != "accounts"]
    lines.append(f"accounts = {_toml_list(ids)}")
    for acc in ids:
        lines += ["", "[[accounts]]", f'id = "{acc}"']
    apps = [*demo_apps, *(BenchApp(f"com.bench.app{i}", "ANDROID", a) for i, a in enumerate(added))]
    for a in apps:
        lines += ["", "[[apps]]", f'id = "{a.id}"', f'os_type = "{a.os_type}"']
        lines.append(f'account_id = "{a.account_id}"')
    for i, acc in enumerate(sorted({a.account_id for a in apps})):
        lines += ["", "[[app_event_provider_configurations]]", f'id = "bpc{_b36(i, 3)}"']
        lines += [f'account_id = "{acc}"', f'provider_advertiser_id = "bench-{acc}"']
    for a in apps:
        lines += ["", "[[app_event_tags]]", f'app_store_identifier = "{a.id}"']
        lines += ['conversion_types = "*"', "post_engagement_attribution_window = 30"]
        lines += ["post_view_attribution_window = 1"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return BenchConfig(path, (), tuple(apps))
