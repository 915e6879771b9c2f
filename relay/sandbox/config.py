"""What the sandbox knows: its ad accounts, pixels, credentials and budgets.

Read from the same mapping file the relay uses (default: the packaged `defaults.toml`), with
the `RELAY_*` credentials winning over the file's, so that one environment configures both
the relay and the sandbox. `load_sandbox_config` takes any mapping as the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from relay.config import (
    DEFAULT_ACCOUNT_LIMIT,
    DEFAULT_ACCOUNT_WINDOW_S,
    Credentials,
    Secret,
    default_mapping_path,
    env_credentials,
    parse_mapping,
    read_document,
)
from relay.errors import ConfigError

DEFAULT_JOURNAL_MAX_ENTRIES: Final = 2_000_000
DEFAULT_DEDUP_MAX_KEYS: Final = 2_000_000
DEDUP_WINDOW_S: Final = 48 * 3600.0  # X counts the same event + conversion_id once in 48 h


@dataclass(frozen=True, slots=True)
class SandboxAccount:
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class SandboxPixel:
    """A pixel (web event source): its account, its event tags and its Conversion API token."""

    id: str
    account_id: str
    event_ids: frozenset[str]
    pixel_token: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True, slots=True)
class SandboxCredentials:
    """One OAuth 1.0a consumer + access token, and the ad accounts the token's user may use."""

    consumer_key: str
    consumer_secret: Secret
    access_token: str
    access_token_secret: Secret
    accounts: frozenset[str]


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the emulated X knows; validated when built."""

    accounts: Mapping[str, SandboxAccount]
    pixels: Mapping[str, SandboxPixel]
    credentials: tuple[SandboxCredentials, ...] = ()
    account_limit: int = DEFAULT_ACCOUNT_LIMIT
    account_window_s: float = DEFAULT_ACCOUNT_WINDOW_S
    journal_max_entries: int = DEFAULT_JOURNAL_MAX_ENTRIES
    dedup_window_s: float = DEDUP_WINDOW_S
    dedup_max_keys: int = DEFAULT_DEDUP_MAX_KEYS

    def __post_init__(self) -> None:
        for pixel in self.pixels.values():
            if pixel.account_id not in self.accounts:
                raise ConfigError(f"pixel {pixel.id}: unknown account {pixel.account_id}")
        if self.account_limit <= 0 or self.account_window_s <= 0:
            raise ConfigError("the sandbox budget (limit and window) must be positive")
        if self.journal_max_entries <= 0 or self.dedup_max_keys <= 0:
            raise ConfigError("the sandbox journal and dedup capacities must be positive")
        if self.dedup_window_s <= 0:
            raise ConfigError("the sandbox dedup window must be positive")

    def credentials_for(self, consumer_key: str, access_token: str) -> SandboxCredentials | None:
        for creds in self.credentials:
            if creds.consumer_key == consumer_key and creds.access_token == access_token:
                return creds
        return None


def load_sandbox_config(path: Path | None, environ: Mapping[str, str]) -> SandboxConfig:
    """The config file (default: the packaged defaults) plus `RELAY_*` overrides."""
    data = read_document(path or default_mapping_path())
    mapping = parse_mapping(data)
    accounts = _accounts(data.get("accounts"))
    pixels: dict[str, SandboxPixel] = {}
    for pixel in mapping.pixels.values():
        # A pixel whose account the file does not list still has that account.
        accounts.setdefault(pixel.account_id, SandboxAccount(pixel.account_id))
        pixels[pixel.id] = SandboxPixel(
            pixel.id, pixel.account_id, frozenset(pixel.event_ids), pixel.pixel_token
        )
    # The file's token lists the accounts its user may manage; no list means all of them.
    token_accounts = frozenset(mapping.token_accounts or accounts)
    creds = env_credentials(environ) or mapping.credentials
    return SandboxConfig(
        accounts=accounts,
        pixels=pixels,
        credentials=(_sandbox_credentials(creds, token_accounts),) if creds else (),
        account_limit=int(_number(environ, "RELAY_ACCOUNT_LIMIT", DEFAULT_ACCOUNT_LIMIT)),
        account_window_s=_number(environ, "RELAY_ACCOUNT_WINDOW_S", DEFAULT_ACCOUNT_WINDOW_S),
    )


def _accounts(raw: Any) -> dict[str, SandboxAccount]:
    accounts: dict[str, SandboxAccount] = {}
    if raw is None:
        return accounts
    if not isinstance(raw, list):
        raise ConfigError("accounts must be a list of tables with an id")
    for entry in raw:
        if not isinstance(entry, dict) or not entry.get("id"):
            raise ConfigError(f"accounts entry {entry!r} needs an id")
        account = SandboxAccount(str(entry["id"]), str(entry.get("name", "")))
        accounts[account.id] = account
    return accounts


def _sandbox_credentials(creds: Credentials, accounts: frozenset[str]) -> SandboxCredentials:
    if not creds.complete:
        # An empty secret would let anyone sign: refuse rather than open the sandbox.
        raise ConfigError(
            "sandbox credentials are incomplete: RELAY_CONSUMER_KEY, RELAY_CONSUMER_SECRET,"
            " RELAY_ACCESS_TOKEN and RELAY_ACCESS_TOKEN_SECRET (or the file's) must all be set"
        )
    return SandboxCredentials(
        consumer_key=creds.consumer_key,
        consumer_secret=creds.consumer_secret,
        access_token=creds.access_token,
        access_token_secret=creds.access_token_secret,
        accounts=accounts,
    )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
