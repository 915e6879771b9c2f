"""Settings: read from `RELAY_*` environment variables (and an optional mapping file) here only.

`load_settings(environ)` takes any mapping, so tests build settings without touching
`os.environ`. Secrets are wrapped in `Secret`, whose repr never shows the value.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from relay.errors import ConfigError

DEFAULT_BOOTSTRAP: Final = "127.0.0.1:9092"
DEFAULT_API_BASE_URL: Final = "https://ads-api.x.com"
DEFAULT_TOPIC_PREFIX: Final = "relay"
DEFAULT_ACCOUNT_LIMIT: Final = 60_000
DEFAULT_ACCOUNT_WINDOW_S: Final = 900.0
DEFAULT_HTTP_PORT: Final = 9400
DEFAULT_WEB_BATCH_SIZE: Final = 500  # X's maximum conversions per web request
DEFAULT_LINGER_S: Final = 0.2
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024
DEFAULT_INPUTS: Final = "relay.input.web=web"


class Secret:
    """A secret string whose repr and str are masked; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    """OAuth 1.0a user-context credentials."""

    consumer_key: str
    consumer_secret: Secret
    access_token: str
    access_token_secret: Secret

    @property
    def complete(self) -> bool:
        return all(
            (self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret)
        )


@dataclass(frozen=True)
class Pixel:
    """A web event source (pixel) and the ad account that owns it."""

    id: str
    account_id: str
    event_ids: tuple[str, ...] = ()
    pixel_token: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True)
class MappingFile:
    """What the optional mapping file (`RELAY_CONFIG`) says: pixels, accounts, credentials."""

    pixels: Mapping[str, Pixel] = field(default_factory=dict)
    credentials: Credentials | None = None
    token_accounts: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def account_for_pixel(self, pixel_id: str) -> str | None:
        pixel = self.pixels.get(pixel_id)
        return pixel.account_id if pixel else None


@dataclass(frozen=True)
class Settings:
    """Everything the worker needs, validated when built. Units are in the names."""

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    api_base_url: str = DEFAULT_API_BASE_URL
    credentials: Credentials = field(
        default_factory=lambda: Credentials("", Secret(""), "", Secret(""))
    )
    device_id_hmac_key: Secret = field(default_factory=lambda: Secret(""))
    inputs: Mapping[str, str] = field(default_factory=lambda: parse_inputs(DEFAULT_INPUTS))
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    account_limit: int = DEFAULT_ACCOUNT_LIMIT
    account_window_s: float = DEFAULT_ACCOUNT_WINDOW_S
    http_port: int = DEFAULT_HTTP_PORT
    web_batch_size: int = DEFAULT_WEB_BATCH_SIZE
    linger_s: float = DEFAULT_LINGER_S
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    default_phone_region: str | None = None
    use_pixel_token: bool = False
    # App conversions go one per request: X's 100-300 ms latency needs many in flight.
    max_in_flight_requests: int = 256
    max_in_flight_per_account: int = 32
    max_attempts: int = 6  # for failures X's availability does not explain
    retry_for_s: float = 21_600.0  # how long 5xx, timeouts and connection errors are retried
    mobile_mode: str = "record"  # record (conversion_event) | check (conversion_attribution)
    circuit_failure_ratio: float = 0.8  # of the last requests failing: delivery pauses
    circuit_probe_s: float = 5.0
    hold_probe_s: float = 30.0  # a rejected credential's or refused target's probe interval
    max_lane_events: int = 20_000  # per account held in memory
    max_lane_bytes: int = 32 * 1024 * 1024
    max_buffered_bytes: int = 256 * 1024 * 1024
    app_tags_refresh_s: float = 900.0
    lane_idle_s: float = 30.0
    retry_base_s: float = 0.5  # full jitter: attempt n waits up to min(max, base * 2**(n-1))
    retry_max_s: float = 60.0
    request_timeout_s: float = 30.0
    max_buffered_events: int = 200_000
    shutdown_grace_s: float = 20.0
    # The group coordinator waits about half of this before the first assignment; the
    # embedded broker accepts short ones (demo, tests), real Kafka wants >= 6000 by default.
    kafka_session_timeout_ms: int = 10_000
    kafka_group_instance_id: str | None = None  # static membership: a restart keeps its share
    mapping: MappingFile = field(default_factory=MappingFile)

    def __post_init__(self) -> None:
        if self.account_limit <= 0:
            raise ConfigError("RELAY_ACCOUNT_LIMIT must be a positive number of events")
        if self.account_window_s <= 0:
            raise ConfigError("RELAY_ACCOUNT_WINDOW_S must be positive")
        if not 1 <= self.web_batch_size <= DEFAULT_WEB_BATCH_SIZE:
            raise ConfigError(f"RELAY_WEB_BATCH_SIZE must be 1..{DEFAULT_WEB_BATCH_SIZE}")
        if self.linger_s < 0:
            raise ConfigError("RELAY_LINGER_S must not be negative")
        if self.max_attempts < 1:
            raise ConfigError("RELAY_MAX_ATTEMPTS must be at least 1")
        if not 0 < self.retry_base_s <= self.retry_max_s:
            raise ConfigError("RELAY_RETRY_BASE_S must be positive and <= RELAY_RETRY_MAX_S")
        if self.max_event_bytes <= 0:
            raise ConfigError("RELAY_MAX_EVENT_BYTES must be positive")
        if not self.inputs:
            raise ConfigError("RELAY_INPUTS names no input topic")
        if self.mobile_mode not in ("record", "check"):
            raise ConfigError("RELAY_MOBILE_MODE must be record or check")
        if min(self.max_in_flight_requests, self.max_in_flight_per_account) < 1:
            raise ConfigError("RELAY_MAX_IN_FLIGHT_* must be at least 1")
        if not 0 < self.circuit_failure_ratio <= 1:
            raise ConfigError("RELAY_CIRCUIT_FAILURE_RATIO must be in (0, 1]")

    @property
    def revoke_drain_s(self) -> float:
        # Well inside the session timeout, so that the member is not evicted mid-drain.
        return min(self.shutdown_grace_s, self.kafka_session_timeout_ms / 2000)

    @property
    def outbound_topic(self) -> str:
        return f"{self.topic_prefix}.outbound"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}.dlq"

    @property
    def attributions_topic(self) -> str:
        return f"{self.topic_prefix}.attributions"

    @property
    def ingest_group(self) -> str:
        return f"{self.topic_prefix}-ingest"

    @property
    def deliver_group(self) -> str:
        return f"{self.topic_prefix}-deliver"


KNOWN_FORMATS: Final = ("web", "mobile", "appsflyer", "adjust", "branch", "segment")


def parse_inputs(spec: str) -> dict[str, str]:
    """`topic=format,topic=format` -> {topic: format}."""
    inputs: dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        topic, sep, fmt = item.partition("=")
        topic, fmt = topic.strip(), fmt.strip()
        if not sep or not topic or not fmt:
            raise ConfigError(f"RELAY_INPUTS entry {item!r} is not topic=format")
        if fmt not in KNOWN_FORMATS:
            raise ConfigError(
                f"RELAY_INPUTS: unknown format {fmt!r} (known: {', '.join(KNOWN_FORMATS)})"
            )
        inputs[topic] = fmt
    return inputs


def default_mapping_path() -> Path:
    """The packaged demo/test defaults shared by the sandbox and the relay."""
    return Path(str(resources.files("relay").joinpath("data", "defaults.toml")))


def read_document(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a dict, with a clear error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/mapping at the top")
    return data


def credentials_from(raw: Mapping[str, Any] | None) -> Credentials | None:
    if not raw:
        return None
    return Credentials(
        consumer_key=str(raw.get("consumer_key", "")),
        consumer_secret=Secret(str(raw.get("consumer_secret", ""))),
        access_token=str(raw.get("access_token", "")),
        access_token_secret=Secret(str(raw.get("access_token_secret", ""))),
    )


def parse_mapping(data: Mapping[str, Any]) -> MappingFile:
    pixels: dict[str, Pixel] = {}
    for entry in data.get("pixels", []) or []:
        try:
            pixel = Pixel(
                id=str(entry["id"]),
                account_id=str(entry["account_id"]),
                event_ids=tuple(str(e) for e in entry.get("event_ids", [])),
                pixel_token=Secret(str(entry.get("pixel_token", ""))),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"pixels entry {entry!r} needs id and account_id") from exc
        pixels[pixel.id] = pixel
    raw_creds = data.get("credentials")
    accounts = tuple(str(a) for a in (raw_creds or {}).get("accounts", []))
    return MappingFile(
        pixels=pixels, credentials=credentials_from(raw_creds), token_accounts=accounts, raw=data
    )


def load_mapping(path: Path | None) -> MappingFile:
    return parse_mapping(read_document(path)) if path else MappingFile()


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (true/false)")


def _secret(env: Mapping[str, str], name: str) -> str:
    """A secret from `NAME`, or from the file named by `NAME_FILE` (mounted Kubernetes secrets)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    return ""


def env_credentials(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from the `RELAY_*` variables, when any is set (they win over the file)."""
    names = (
        "RELAY_CONSUMER_KEY",
        "RELAY_CONSUMER_SECRET",
        "RELAY_ACCESS_TOKEN",
        "RELAY_ACCESS_TOKEN_SECRET",
    )
    values = [_secret(env, n) for n in names]
    if not any(values):
        return None
    return Credentials(values[0], Secret(values[1]), values[2], Secret(values[3]))


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from an environment mapping (default: `os.environ`) plus overrides."""
    env = os.environ if environ is None else environ
    mapping_path = env.get("RELAY_CONFIG")
    mapping = load_mapping(Path(mapping_path)) if mapping_path else MappingFile()
    credentials = (
        env_credentials(env) or mapping.credentials or Credentials("", Secret(""), "", Secret(""))
    )
    hmac_key = _secret(env, "RELAY_DEVICE_ID_HMAC_KEY")
    if hmac_key:
        try:
            base64.b64decode(hmac_key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("RELAY_DEVICE_ID_HMAC_KEY must be base64") from None
    values: dict[str, Any] = dict(
        kafka_bootstrap=env.get("RELAY_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP,
        api_base_url=(env.get("RELAY_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/"),
        credentials=credentials,
        device_id_hmac_key=Secret(hmac_key),
        inputs=parse_inputs(env.get("RELAY_INPUTS") or DEFAULT_INPUTS),
        topic_prefix=env.get("RELAY_TOPIC_PREFIX") or DEFAULT_TOPIC_PREFIX,
        account_limit=int(_number(env, "RELAY_ACCOUNT_LIMIT", DEFAULT_ACCOUNT_LIMIT)),
        account_window_s=_number(env, "RELAY_ACCOUNT_WINDOW_S", DEFAULT_ACCOUNT_WINDOW_S),
        http_port=int(_number(env, "RELAY_HTTP_PORT", DEFAULT_HTTP_PORT)),
        web_batch_size=int(_number(env, "RELAY_WEB_BATCH_SIZE", DEFAULT_WEB_BATCH_SIZE)),
        linger_s=_number(env, "RELAY_LINGER_S", DEFAULT_LINGER_S),
        max_event_bytes=int(_number(env, "RELAY_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES)),
        default_phone_region=env.get("RELAY_DEFAULT_PHONE_REGION") or None,
        use_pixel_token=_flag(env, "RELAY_USE_PIXEL_TOKEN", False),
        max_in_flight_requests=int(_number(env, "RELAY_MAX_IN_FLIGHT_REQUESTS", 256)),
        max_in_flight_per_account=int(_number(env, "RELAY_MAX_IN_FLIGHT_PER_ACCOUNT", 32)),
        max_attempts=int(_number(env, "RELAY_MAX_ATTEMPTS", 6)),
        retry_for_s=_number(env, "RELAY_RETRY_FOR_S", 21_600.0),
        mobile_mode=(env.get("RELAY_MOBILE_MODE") or "record").strip().lower(),
        circuit_failure_ratio=_number(env, "RELAY_CIRCUIT_FAILURE_RATIO", 0.8),
        circuit_probe_s=_number(env, "RELAY_CIRCUIT_PROBE_S", 5.0),
        hold_probe_s=_number(env, "RELAY_HOLD_PROBE_S", 30.0),
        max_lane_events=int(_number(env, "RELAY_MAX_LANE_EVENTS", 20_000)),
        max_lane_bytes=int(_number(env, "RELAY_MAX_LANE_BYTES", 32 * 1024 * 1024)),
        max_buffered_bytes=int(_number(env, "RELAY_MAX_BUFFERED_BYTES", 256 * 1024 * 1024)),
        app_tags_refresh_s=_number(env, "RELAY_APP_TAGS_REFRESH_S", 900.0),
        lane_idle_s=_number(env, "RELAY_LANE_IDLE_S", 30.0),
        retry_base_s=_number(env, "RELAY_RETRY_BASE_S", 0.5),
        retry_max_s=_number(env, "RELAY_RETRY_MAX_S", 60.0),
        request_timeout_s=_number(env, "RELAY_REQUEST_TIMEOUT_S", 30.0),
        max_buffered_events=int(_number(env, "RELAY_MAX_BUFFERED_EVENTS", 200_000)),
        shutdown_grace_s=_number(env, "RELAY_SHUTDOWN_GRACE_S", 20.0),
        kafka_session_timeout_ms=int(_number(env, "RELAY_KAFKA_SESSION_TIMEOUT_MS", 10_000)),
        kafka_group_instance_id=(
            env.get("RELAY_KAFKA_GROUP_INSTANCE_ID") or env.get("POD_NAME") or None
        ),
        mapping=mapping,
    )
    values.update(overrides)
    return Settings(**values)
