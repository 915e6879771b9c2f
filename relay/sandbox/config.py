"""What the sandbox knows: its ad accounts, pixels, apps, engagements, credentials, budgets.

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
    setting_value,
)
from relay.errors import ConfigError
from relay.sandbox.attribution import Engagement, parse_engagements

DEFAULT_JOURNAL_MAX_ENTRIES: Final = 2_000_000
DEFAULT_DEDUP_MAX_KEYS: Final = 2_000_000
DEDUP_WINDOW_S: Final = 48 * 3600.0  # X counts the same event + conversion_id once in 48 h
# Requests per user token: X's per-endpoint limits are far above what one relay sends.
DEFAULT_TOKEN_LIMIT: Final = 100_000
DEFAULT_TOKEN_WINDOW_S: Final = 900.0
OAUTH_WINDOW_S: Final = 300.0  # X refuses an oauth_timestamp further than this from its clock
DEFAULT_NONCE_MAX_KEYS: Final = 1_000_000
DEFAULT_MAX_ENGAGEMENTS: Final = 1_000_000
OS_TYPES: Final = ("IOS", "ANDROID")


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
class SandboxApp:
    """A mobile app by its store id (`333903271`, `com.vine.android`) and its ad account."""

    id: str
    os_type: str
    account_id: str
    name: str = ""


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
    apps: Mapping[str, SandboxApp] = field(default_factory=dict)
    engagements: tuple[Engagement, ...] = ()
    max_engagements: int = DEFAULT_MAX_ENGAGEMENTS
    token_limit: int = DEFAULT_TOKEN_LIMIT
    token_window_s: float = DEFAULT_TOKEN_WINDOW_S
    oauth_window_s: float = OAUTH_WINDOW_S
    nonce_max_keys: int = DEFAULT_NONCE_MAX_KEYS

    def __post_init__(self) -> None:
        for pixel in self.pixels.values():
            if pixel.account_id not in self.accounts:
                raise ConfigError(f"pixel {pixel.id}: unknown account {pixel.account_id}")
        for app in self.apps.values():
            if app.account_id not in self.accounts:
                raise ConfigError(f"app {app.id}: unknown account {app.account_id}")
            if app.os_type not in OS_TYPES:
                raise ConfigError(f"app {app.id}: os_type must be IOS or ANDROID")
        for engagement in self.engagements:
            self.check_engagement(engagement)
        if len(self.engagements) > self.max_engagements:
            raise ConfigError(f"more than {self.max_engagements} engagements")
        if self.token_limit <= 0 or self.token_window_s <= 0:
            raise ConfigError("the sandbox token budget (limit and window) must be positive")
        if self.oauth_window_s <= 0 or self.nonce_max_keys <= 0:
            raise ConfigError("the OAuth timestamp window and nonce capacity must be positive")
        if self.account_limit <= 0 or self.account_window_s <= 0:
            raise ConfigError("the sandbox budget (limit and window) must be positive")
        if self.journal_max_entries <= 0 or self.dedup_max_keys <= 0:
            raise ConfigError("the sandbox journal and dedup capacities must be positive")
        if self.dedup_window_s <= 0:
            raise ConfigError("the sandbox dedup window must be positive")

    def check_engagement(self, engagement: Engagement) -> None:
        """ConfigError unless the engagement's app and account are known."""
        if engagement.app_id not in self.apps:
            raise ConfigError(f"engagement: unknown app {engagement.app_id}")
        if engagement.account_id not in self.accounts:
            raise ConfigError(f"engagement: unknown account {engagement.account_id}")

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
    apps = _apps(data.get("apps"), accounts)
    try:
        engagements = parse_engagements(data.get("engagements") or [])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # The file's token lists the accounts its user may manage; no list means all of them.
    token_accounts = frozenset(mapping.token_accounts or accounts)
    creds = env_credentials(environ) or mapping.credentials
    return SandboxConfig(
        accounts=accounts,
        pixels=pixels,
        credentials=(_sandbox_credentials(creds, token_accounts),) if creds else (),
        account_limit=setting_value(environ, "RELAY_ACCOUNT_LIMIT"),
        account_window_s=setting_value(environ, "RELAY_ACCOUNT_WINDOW_S"),
        apps=apps,
        engagements=engagements,
        token_limit=int(_number(environ, "RELAY_SANDBOX_TOKEN_LIMIT", DEFAULT_TOKEN_LIMIT)),
        token_window_s=_number(environ, "RELAY_SANDBOX_TOKEN_WINDOW_S", DEFAULT_TOKEN_WINDOW_S),
    )


def _apps(raw: Any, accounts: dict[str, SandboxAccount]) -> dict[str, SandboxApp]:
    """`[[apps]]`: id (store id), os_type, account_id, name. An unlisted account is added."""
    apps: dict[str, SandboxApp] = {}
    if raw is None:
        return apps
    if not isinstance(raw, list):
        raise ConfigError("apps must be a list of tables with id, os_type and account_id")
    for entry in raw:
        if not isinstance(entry, dict) or not all(
            entry.get(k) for k in ("id", "os_type", "account_id")
        ):
            raise ConfigError(f"apps entry {entry!r} needs id, os_type and account_id")
        app = SandboxApp(
            str(entry["id"]),
            str(entry["os_type"]),
            str(entry["account_id"]),
            str(entry.get("name", "")),
        )
        accounts.setdefault(app.account_id, SandboxAccount(app.account_id))
        apps[app.id] = app
    return apps


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
