"""What the sandbox knows: its ad accounts, pixels, apps, engagements, credentials, budgets,
and the management resources it starts with (app event tags, app lists, provider configs).

Read from the same file the relay uses (default: the packaged `defaults.toml`), with the
`RELAY_*` credentials winning over the file's, so that one environment configures both the
relay and the sandbox. The sandbox reads that file and that environment itself, never with
the relay's parser (`relay.config`): the sandbox is the relay's oracle and must not share
the code it judges. `load_sandbox_config` takes any mapping as the environment.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from relay.errors import ConfigError
from relay.sandbox import seeds
from relay.sandbox.attribution import Engagement, parse_engagements
from relay.sandbox.oauth1 import signing_key
from relay.sandbox.seeds import Seed
from relay.secret import Secret

DEFAULT_ACCOUNT_LIMIT: Final = 60_000  # X's events per ad account per 15 minutes
DEFAULT_ACCOUNT_WINDOW_S: Final = 900.0
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
# X's lower limit for list requests with `with_total_count=true`, per user token.
DEFAULT_TOTAL_COUNT_LIMIT: Final = 200
DEFAULT_TOTAL_COUNT_WINDOW_S: Final = 900.0
# Requests X's routes serve at once; more answer 503 OVER_CAPACITY.
DEFAULT_MAX_IN_FLIGHT: Final = 1024
_CREDENTIAL_VARIABLES: Final = (
    "RELAY_CONSUMER_KEY",
    "RELAY_CONSUMER_SECRET",
    "RELAY_ACCESS_TOKEN",
    "RELAY_ACCESS_TOKEN_SECRET",
)


@dataclass(frozen=True, slots=True)
class SandboxAccount:
    id: str
    name: str = ""
    locked: bool = False  # every call on it answers 403 ACCOUNT_LOCKED_OUT


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
    # False: the developer app has no Ads API access (403 UNAUTHORIZED_CLIENT_APPLICATION).
    ads_api_access: bool = True
    signing_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = signing_key(self.consumer_secret.reveal(), self.access_token_secret.reveal())
        object.__setattr__(self, "signing_key", key)


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
    seeds: tuple[Seed, ...] = ()
    total_count_limit: int = DEFAULT_TOTAL_COUNT_LIMIT
    total_count_window_s: float = DEFAULT_TOTAL_COUNT_WINDOW_S
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        if self.total_count_limit <= 0 or self.total_count_window_s <= 0:
            raise ConfigError("the with_total_count budget (limit and window) must be positive")
        if self.max_in_flight <= 0:
            raise ConfigError("max_in_flight must be positive")
        for seed in self.seeds:
            if seed.account_id not in self.accounts:
                raise ConfigError(f"{seed.kind}: unknown account {seed.account_id}")
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


def default_config_path() -> Path:
    """The packaged demo/test defaults shared by the sandbox and the relay."""
    return Path(str(resources.files("relay").joinpath("data", "defaults.toml")))


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML or YAML file as a dict, with a clear error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/mapping at the top")
    return data


def load_sandbox_config(path: Path | None, environ: Mapping[str, str]) -> SandboxConfig:
    """The config file (default: the packaged defaults) plus `RELAY_*` overrides."""
    data = read_config_file(path or default_config_path())
    accounts = _accounts(data.get("accounts"))
    pixels = _pixels(data.get("pixels"), accounts)
    apps = _apps(data.get("apps"), accounts)
    try:
        engagements = parse_engagements(data.get("engagements") or [])
        seeded = seeds.parse_seeds(data, {a.id: (a.os_type, a.account_id) for a in apps.values()})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    raw_creds = data.get("credentials") or {}
    if not isinstance(raw_creds, dict):
        raise ConfigError("credentials must be a table")
    # The file's token lists the accounts its user may manage; no list means all of them.
    token_accounts = frozenset(str(a) for a in raw_creds.get("accounts") or accounts)
    creds = _env_credentials(environ) or _file_credentials(raw_creds)
    limits = data.get("sandbox") or {}
    if not isinstance(limits, dict):
        raise ConfigError("sandbox must be a table")
    return SandboxConfig(
        accounts=accounts,
        pixels=pixels,
        credentials=(
            (_sandbox_credentials(creds, token_accounts, _ads_api_access(raw_creds)),)
            if creds
            else ()
        ),
        account_limit=int(_number(environ, "RELAY_ACCOUNT_LIMIT", DEFAULT_ACCOUNT_LIMIT)),
        account_window_s=_number(environ, "RELAY_ACCOUNT_WINDOW_S", DEFAULT_ACCOUNT_WINDOW_S),
        apps=apps,
        engagements=engagements,
        token_limit=int(_number(environ, "RELAY_SANDBOX_TOKEN_LIMIT", DEFAULT_TOKEN_LIMIT)),
        token_window_s=_number(environ, "RELAY_SANDBOX_TOKEN_WINDOW_S", DEFAULT_TOKEN_WINDOW_S),
        seeds=seeded,
        total_count_limit=int(_setting(limits, "total_count_limit", DEFAULT_TOTAL_COUNT_LIMIT)),
        total_count_window_s=_setting(limits, "total_count_window_s", DEFAULT_TOTAL_COUNT_WINDOW_S),
        max_in_flight=int(_setting(limits, "max_in_flight", DEFAULT_MAX_IN_FLIGHT)),
    )


def _pixels(raw: Any, accounts: dict[str, SandboxAccount]) -> dict[str, SandboxPixel]:
    """`[[pixels]]`: id, account_id, event_ids, pixel_token. An unlisted account is added."""
    pixels: dict[str, SandboxPixel] = {}
    if raw is None:
        return pixels
    if not isinstance(raw, list):
        raise ConfigError("pixels must be a list of tables with id and account_id")
    for entry in raw:
        if not isinstance(entry, dict) or not entry.get("id") or not entry.get("account_id"):
            raise ConfigError(f"pixels entry {entry!r} needs id and account_id")
        event_ids = entry.get("event_ids") or []
        if not isinstance(event_ids, list):
            raise ConfigError(f"pixel {entry['id']}: event_ids must be a list")
        pixel = SandboxPixel(
            str(entry["id"]),
            str(entry["account_id"]),
            frozenset(str(e) for e in event_ids),
            Secret(str(entry.get("pixel_token", ""))),
        )
        # A pixel whose account the file does not list still has that account.
        accounts.setdefault(pixel.account_id, SandboxAccount(pixel.account_id))
        pixels[pixel.id] = pixel
    return pixels


def _file_credentials(raw: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    if not raw:
        return None
    return (
        str(raw.get("consumer_key", "")),
        str(raw.get("consumer_secret", "")),
        str(raw.get("access_token", "")),
        str(raw.get("access_token_secret", "")),
    )


def _env_credentials(environ: Mapping[str, str]) -> tuple[str, str, str, str] | None:
    """The `RELAY_*` credentials, when any is set (`<NAME>_FILE` names a file holding one)."""
    values = tuple(_secret(environ, name) for name in _CREDENTIAL_VARIABLES)
    if not any(values):
        return None
    return values[0], values[1], values[2], values[3]


def _secret(environ: Mapping[str, str], name: str) -> str:
    if environ.get(name):
        return environ[name]
    path = environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    return ""


def _setting(table: Mapping[str, Any], name: str, default: float) -> float:
    value = table.get(name, default)
    if type(value) not in (int, float):
        raise ConfigError(f"sandbox.{name} must be a number")
    return float(value)


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
        locked = entry.get("locked", False)
        if type(locked) is not bool:
            raise ConfigError(f"account {entry['id']}: locked must be true or false")
        account = SandboxAccount(str(entry["id"]), str(entry.get("name", "")), locked)
        accounts[account.id] = account
    return accounts


def _ads_api_access(raw: Mapping[str, Any]) -> bool:
    value = raw.get("ads_api_access", True)
    if type(value) is not bool:
        raise ConfigError("credentials.ads_api_access must be true or false")
    return value


def _sandbox_credentials(
    creds: tuple[str, str, str, str], accounts: frozenset[str], ads_api_access: bool = True
) -> SandboxCredentials:
    if not all(creds):
        # An empty secret would let anyone sign: refuse rather than open the sandbox.
        raise ConfigError(
            "sandbox credentials are incomplete: RELAY_CONSUMER_KEY, RELAY_CONSUMER_SECRET,"
            " RELAY_ACCESS_TOKEN and RELAY_ACCESS_TOKEN_SECRET (or the file's) must all be set"
        )
    consumer_key, consumer_secret, access_token, access_token_secret = creds
    return SandboxCredentials(
        consumer_key=consumer_key,
        consumer_secret=Secret(consumer_secret),
        access_token=access_token,
        access_token_secret=Secret(access_token_secret),
        accounts=accounts,
        ads_api_access=ads_api_access,
    )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    """A positive finite number from `name`: every budget variable the sandbox reads is one."""
    value = environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    # inf would overflow the int of a limit, nan passes every comparison, 0 serves nothing.
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive finite number")
    return number
