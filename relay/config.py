"""Settings: read from `RELAY_*` environment variables (and an optional mapping file) here only.

`Settings` is the settings table: each field is one row (variable, default, help, bounds,
secret or not; `relay.settings_table` has the machinery), so a default is written once and
adding a setting is one `setting(...)` line. `load_settings(environ)` takes any mapping, so
tests build settings without touching `os.environ`; it reports every problem at once, each
naming its variable. Secrets are `Secret`s, whose repr never shows the value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from relay.errors import ConfigError, Problem
from relay.normalize.device_ids import DEVICE_ID_CASES, DeviceIdCase
from relay.secret import MASK, Secret
from relay.settings_table import (
    Setting,
    assembled,
    parse_text,
    read_text,
    row_problems,
    rows_of,
    setting,
    value_problem,
)

__all__ = [
    "SETTINGS",
    "App",
    "BranchApp",
    "Credentials",
    "MappingFile",
    "Pixel",
    "Secret",
    "Settings",
    "default_mapping_path",
    "env_credentials",
    "load_mapping",
    "load_settings",
    "offline_settings",
    "parse_inputs",
    "parse_mapping",
    "read_document",
]

MAX_WEB_BATCH_SIZE: Final = 500  # X's maximum conversions per web request
KNOWN_FORMATS: Final = ("web", "mobile", "appsflyer", "adjust", "branch", "segment")
APP_FORMATS: Final = frozenset({"mobile", "appsflyer", "adjust", "branch"})
EVENT_MAP_KEYS: Final = {
    "appsflyer": "appsflyer_events",
    "adjust": "adjust_tokens",
    "branch": "branch_events",
}
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: Final = ("text", "json")
EVENT_LOOPS: Final = ("uvloop", "asyncio")  # relay/eventloop.py
IDEMPOTENCE_MODES: Final = ("auto", "true", "false")
TOPIC_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,200}")
SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
# Built-in OAUTHBEARER token providers (relay.kafka_oauth); else `module:factory`.
TOKEN_PROVIDERS: Final = ("oidc", "aws-msk-iam")
LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Credentials:
    """OAuth 1.0a user-context credentials.

    The key and the token are identifiers X sees in every Authorization header, not secrets,
    but they come from the same secret store: kept out of reprs as well.
    """

    consumer_key: str = field(repr=False)
    consumer_secret: Secret
    access_token: str = field(repr=False)
    access_token_secret: Secret

    @classmethod
    def empty(cls) -> Credentials:
        return cls("", Secret(""), "", Secret(""))

    @property
    def complete(self) -> bool:
        return all(
            (self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret)
        )


@dataclass(frozen=True)
class NamedCredentials:
    """Credentials of their own for some accounts, pixels or apps (agencies, MMPs).

    In `RELAY_CONFIG`: a table `[delivery_credentials.NAME]` with `accounts`, `pixels`, `apps`
    and the four values, each also from `RELAY_CREDENTIALS_<NAME>_<VALUE>` or its `_FILE`
    (which win over the file).
    """

    name: str
    credentials: Credentials
    accounts: tuple[str, ...] = ()
    pixels: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pixel:
    """A web event source (pixel) and the ad account that owns it."""

    id: str
    account_id: str
    event_ids: tuple[str, ...] = ()
    pixel_token: Secret = field(default_factory=lambda: Secret(""))
    segment_events: Mapping[str, str] = field(default_factory=dict)  # Segment event -> event id


@dataclass(frozen=True)
class App:
    """A mobile app (store id) and its ad account; `event_maps` override the formats' defaults.

    event_maps: format (appsflyer, adjust, branch) -> event name or token -> conversion type
    ("" = not a conversion).
    """

    id: str
    os_type: str
    account_id: str
    event_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class BranchApp:
    """A Branch app and the store ids of its iOS and Android apps."""

    id: str
    ios_app_id: str | None = None
    android_app_id: str | None = None


@dataclass(frozen=True)
class MappingFile:
    """What the optional mapping file (`RELAY_CONFIG`) says: pixels, accounts, credentials.

    Only the parsed, typed entries are kept (secrets as `Secret`), never the raw document.
    """

    pixels: Mapping[str, Pixel] = field(default_factory=dict)
    credentials: Credentials | None = None
    token_accounts: tuple[str, ...] = ()
    apps: Mapping[str, App] = field(default_factory=dict)
    branch_apps: Mapping[str, BranchApp] = field(default_factory=dict)
    named_credentials: tuple[NamedCredentials, ...] = ()

    def account_for_pixel(self, pixel_id: str) -> str | None:
        pixel = self.pixels.get(pixel_id)
        return pixel.account_id if pixel else None

    def account_for_app(self, app_id: str) -> str | None:
        app = self.apps.get(app_id)
        return app.account_id if app else None


def parse_inputs(spec: str) -> dict[str, str]:
    """`topic=format,topic=format` -> {topic: format}."""
    inputs: dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        topic, sep, fmt = item.partition("=")
        topic, fmt = topic.strip(), fmt.strip()
        if not sep or not topic or not fmt:
            raise ConfigError(f"entry {item!r} is not topic=format")
        if fmt not in KNOWN_FORMATS:
            raise ConfigError(f"unknown format {fmt!r} (known: {', '.join(KNOWN_FORMATS)})")
        inputs[topic] = fmt
    return inputs


def _inputs_problem(inputs: Mapping[str, str]) -> str | None:
    if not inputs:
        return "names no input topic"
    # Every known format has an adapter (tests/test_formats_registry.py checks it).
    bad = [t for t in inputs if not TOPIC_NAME.fullmatch(t)]
    return f"{bad[0]!r} is not a valid topic name" if bad else None


def _bootstrap_problem(value: str) -> str | None:
    for server in (s.strip() for s in value.split(",")):
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            return f"{server!r} is not host:port (comma-separated for several)"
    return None


def _base_url(text: str) -> str:
    return text.strip().rstrip("/")


def _base_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "must be scheme://host[:port][/path], without credentials, query or fragment"
    return None


def _topic_prefix_problem(prefix: str) -> str | None:
    return None if TOPIC_NAME.fullmatch(prefix) else "may hold only letters, digits, '.', '_', '-'"


def _region_problem(region: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]{2}", region) else "must be a two-letter region, e.g. US"


def _token_provider_problem(name: str) -> str | None:
    if name in TOKEN_PROVIDERS or re.fullmatch(r"[\w.]+:[\w.]+", name):
        return None
    return f"must be {' or '.join(TOKEN_PROVIDERS)}, or module:factory"


def _https_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return None
    return "must be an https:// URL (http:// only on loopback)"


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _base64_problem(key: Secret) -> str | None:
    try:
        base64.b64decode(key.reveal(), validate=True)
    except (binascii.Error, ValueError):
        return "must be base64"
    return None


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything the worker needs, validated when built. Units are in the names.

    Each field is one row of the settings table: `setting(variable, default, help, bounds)`.
    The repr masks secrets and the identifiers read from secret files (`from_file`).
    """

    kafka_bootstrap: str = setting(
        "RELAY_KAFKA_BOOTSTRAP",
        "127.0.0.1:9092",
        "Kafka bootstrap servers, host:port[,host:port...]",
        check=_bootstrap_problem,
        type_label="host:port list",
    )
    # None: chosen by the broker (relay.kafka.session_timeout_for). The embedded broker holds
    # every group join for half of the session timeout; real Kafka wants >= 6000 by default.
    kafka_session_timeout_ms: int | None = setting(
        "RELAY_KAFKA_SESSION_TIMEOUT_MS",
        None,
        "consumer group session timeout; unset: 10000, or 2000 on the embedded broker (which"
        " holds each group join for half of it)",
        minimum=1_000,
        maximum=3_600_000,
    )
    # None: chosen by the broker too. The embedded broker looks for new records only now and
    # then while a fetch waits; Kafka answers as soon as records arrive.
    kafka_fetch_max_wait_ms: int | None = setting(
        "RELAY_KAFKA_FETCH_MAX_WAIT_MS",
        None,
        "longest a stage's fetch waits for records; unset: 100, or 20 on the embedded broker"
        " (which hands a new record over only when it looks again, at the latest then)",
        minimum=0,
        maximum=60_000,
    )
    kafka_client_id: str = setting(
        "RELAY_KAFKA_CLIENT_ID",
        "conversion-relay",
        "client id the brokers see (quotas, request logs, ACL audits)",
    )
    kafka_security_protocol: str = setting(
        "RELAY_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "how every Kafka client of the relay reaches the brokers",
        choices=SECURITY_PROTOCOLS,
    )
    kafka_ssl_ca_file: str | None = setting(
        "RELAY_KAFKA_SSL_CA_FILE",
        None,
        "PEM CA bundle the brokers' certificates are checked against (default: the system's)",
        path=True,
    )
    kafka_ssl_cert_file: str | None = setting(
        "RELAY_KAFKA_SSL_CERT_FILE", None, "PEM client certificate (mutual TLS)", path=True
    )
    kafka_ssl_key_file: str | None = setting(
        "RELAY_KAFKA_SSL_KEY_FILE", None, "PEM private key of the client certificate", path=True
    )
    kafka_ssl_key_password: Secret = setting(
        "RELAY_KAFKA_SSL_KEY_PASSWORD", "", "password of an encrypted client key", secret=True
    )
    kafka_ssl_check_hostname: bool = setting(
        "RELAY_KAFKA_SSL_CHECK_HOSTNAME",
        True,
        "the broker's certificate must name the host connected to",
    )
    kafka_sasl_mechanism: str | None = setting(
        "RELAY_KAFKA_SASL_MECHANISM",
        None,
        "SASL mechanism, with SASL_PLAINTEXT or SASL_SSL",
        choices=SASL_MECHANISMS,
    )
    kafka_sasl_username: str | None = setting(
        "RELAY_KAFKA_SASL_USERNAME", None, "PLAIN / SCRAM user name", from_file=True
    )
    kafka_sasl_password: Secret = setting(
        "RELAY_KAFKA_SASL_PASSWORD", "", "PLAIN / SCRAM password", secret=True
    )
    kafka_oauth_token_provider: str | None = setting(
        "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER",
        None,
        "OAUTHBEARER tokens: oidc (client credentials grant), aws-msk-iam (the msk extra), "
        "or module:factory (a callable taking the settings, returning an aiokafka "
        "AbstractTokenProvider)",
        check=_token_provider_problem,
        type_label="oidc \\| aws-msk-iam \\| module:factory",
    )
    kafka_oauth_token_url: str | None = setting(
        "RELAY_KAFKA_OAUTH_TOKEN_URL",
        None,
        "token endpoint of the identity provider (oidc)",
        check=_https_problem,
        type_label="URL",
    )
    kafka_oauth_client_id: str | None = setting(
        "RELAY_KAFKA_OAUTH_CLIENT_ID", None, "OAuth client id (oidc)", from_file=True
    )
    kafka_oauth_client_secret: Secret = setting(
        "RELAY_KAFKA_OAUTH_CLIENT_SECRET", "", "OAuth client secret (oidc)", secret=True
    )
    kafka_oauth_scope: str | None = setting(
        "RELAY_KAFKA_OAUTH_SCOPE", None, "OAuth scope to ask for (oidc), if the provider needs one"
    )
    kafka_aws_region: str | None = setting(
        "RELAY_KAFKA_AWS_REGION", None, "AWS region of the MSK cluster (aws-msk-iam)"
    )
    api_base_url: str = setting(
        "RELAY_API_BASE_URL",
        "https://ads-api.x.com",
        "the X Ads API (or the sandbox)",
        parse=_base_url,
        check=_base_url_problem,
        type_label="URL",
    )
    api_ca_file: str | None = setting(
        "RELAY_API_CA_FILE",
        None,
        "PEM CA bundle X's (or a TLS proxy's) certificate is checked against (default: the "
        "system's); verification is always on",
        path=True,
    )
    api_allow_http: bool = setting(
        "RELAY_API_ALLOW_HTTP",
        False,
        "allow an http:// RELAY_API_BASE_URL on a host other than loopback",
    )
    api_connect_timeout_s: float = setting(
        "RELAY_API_CONNECT_TIMEOUT_S",
        10.0,
        "timeout of opening a connection to X (TCP and TLS)",
        above=0,
        maximum=600,
    )
    api_read_timeout_s: float = setting(
        "RELAY_API_READ_TIMEOUT_S",
        30.0,
        "longest wait for X's next bytes once connected",
        above=0,
        maximum=600,
    )
    api_max_connections: int = setting(
        "RELAY_API_MAX_CONNECTIONS",
        32,
        "size of the connection pool to X",
        minimum=1,
        maximum=1_024,
    )
    credentials: Credentials = assembled(
        Credentials.empty,
        Setting(
            "RELAY_CONSUMER_KEY",
            None,
            "OAuth 1.0a consumer key of the X app; the four RELAY_CONSUMER_*/RELAY_ACCESS_* "
            "variables win over the credentials of RELAY_CONFIG",
            from_file=True,
        ),
        Setting("RELAY_CONSUMER_SECRET", None, "OAuth 1.0a consumer secret", secret=True),
        Setting("RELAY_ACCESS_TOKEN", None, "OAuth 1.0a access token", from_file=True),
        Setting("RELAY_ACCESS_TOKEN_SECRET", None, "OAuth 1.0a access token secret", secret=True),
    )
    use_pixel_token: bool = setting(
        "RELAY_USE_PIXEL_TOKEN",
        False,
        "send web conversions with the pixel's X-Pixel-Token instead of OAuth",
    )
    device_id_hmac_key: Secret = setting(
        "RELAY_DEVICE_ID_HMAC_KEY",
        "",
        "base64 HMAC key for device ids (app conversions); required when RELAY_INPUTS binds"
        " an app format (mobile, appsflyer, adjust, branch)",
        secret=True,
        check=_base64_problem,
    )
    device_id_case: DeviceIdCase = setting(
        "RELAY_DEVICE_ID_CASE",
        "as_received",
        "the raw IDFA/AdID's case before hashing (always trimmed)",
        choices=DEVICE_ID_CASES,
    )
    extra_device_ids: bool = setting(
        "RELAY_EXTRA_DEVICE_IDS",
        False,
        "also send extra_device_ids (SHA-256 of the SHA-1 of the device id)",
    )
    inputs: Mapping[str, str] = setting(
        "RELAY_INPUTS",
        "relay.input.web=web",
        "input topics and their formats",
        parse=parse_inputs,
        check=_inputs_problem,
        type_label="topic=format,...",
    )
    topic_prefix: str = setting(
        "RELAY_TOPIC_PREFIX",
        "relay",
        "topics PREFIX.outbound, PREFIX.dlq, ...; consumer groups PREFIX-ingest, PREFIX-deliver",
        check=_topic_prefix_problem,
    )
    mapping: MappingFile = assembled(
        MappingFile,
        Setting(
            "RELAY_CONFIG",
            None,
            "TOML or YAML: pixels (id, account_id, event_ids, pixel_token, segment_events), apps"
            " (id, os_type, account_id, event maps), branch_apps, credentials; unset with "
            "RELAY_API_BASE_URL on a loopback address (a local sandbox): the packaged "
            "relay/data/defaults.toml, as the sandbox uses",
            kind="path",
        ),
    )
    default_phone_region: str | None = setting(
        "RELAY_DEFAULT_PHONE_REGION",
        None,
        "region of phone numbers without + (e.g. US)",
        check=_region_problem,
    )
    account_limit: int = setting(
        "RELAY_ACCOUNT_LIMIT", 60_000, "events per ad account per window", minimum=1
    )
    account_window_s: float = setting(
        "RELAY_ACCOUNT_WINDOW_S", 900.0, "the budget window, in seconds", above=0
    )
    http_port: int = setting(
        "RELAY_HTTP_PORT",
        9400,
        "port of /metrics, /healthz, /readyz (0: any free port)",
        minimum=0,
        maximum=65_535,
    )
    max_event_bytes: int = setting(
        "RELAY_MAX_EVENT_BYTES",
        64 * 1024,
        "larger input records are dead-lettered as too_large",
        minimum=1,
        maximum=8 * 1024 * 1024,
    )
    web_batch_size: int = setting(
        "RELAY_WEB_BATCH_SIZE",
        MAX_WEB_BATCH_SIZE,
        "web conversions per request (X takes at most 500)",
        minimum=1,
        maximum=MAX_WEB_BATCH_SIZE,
    )
    outbound_bundle_events: int = setting(
        "RELAY_OUTBOUND_BUNDLE_EVENTS",
        100,
        "web events of one account and one read of the input written as one outbound record "
        "(1: a record per event); Kafka's per-record costs are paid once for them",
        minimum=1,
        maximum=MAX_WEB_BATCH_SIZE,
    )
    linger_s: float = setting(
        "RELAY_LINGER_S",
        0.2,
        "how long a batch waits to fill, from its first event's append (while records wait "
        "unread on the deliver stage's partitions: until full, at most 30 s)",
        minimum=0,
        maximum=60,
    )
    max_attempts: int = setting(
        "RELAY_MAX_ATTEMPTS",
        6,
        "attempts per request before dead-lettering, for failures an outage of X does not "
        "explain (408, 423, a 5xx while X answers the others); outages: RELAY_RETRY_FOR_S",
        minimum=1,
    )
    # App conversions go one per request: X's 100-300 ms latency needs many in flight.
    max_in_flight_requests: int = setting(
        "RELAY_MAX_IN_FLIGHT_REQUESTS",
        256,
        "requests to X in flight at once",
        minimum=1,
        maximum=1_024,
    )
    max_in_flight_per_account: int = setting(
        "RELAY_MAX_IN_FLIGHT_PER_ACCOUNT",
        32,
        "requests to X in flight at once for one account",
        minimum=1,
        maximum=1_024,
    )
    retry_for_s: float = setting(
        "RELAY_RETRY_FOR_S",
        21_600.0,
        "how long 5xx, timeouts and connection errors are retried before retries_exhausted",
        above=0,
    )
    mobile_mode: str = setting(
        "RELAY_MOBILE_MODE",
        "record",
        "app conversions: record (conversion_event) or check (conversion_attribution only)",
        choices=("record", "check"),
    )
    circuit_failure_ratio: float = setting(
        "RELAY_CIRCUIT_FAILURE_RATIO",
        0.8,
        "share of X's recent answers failing (5xx, timeouts) that pauses all delivery",
        above=0,
        maximum=1,
    )
    circuit_probe_s: float = setting(
        "RELAY_CIRCUIT_PROBE_S", 5.0, "while X fails, one probe request this often", above=0
    )
    hold_probe_s: float = setting(
        "RELAY_HOLD_PROBE_S",
        30.0,
        "probe interval of a credential X rejects (401): one request per credential",
        above=0,
    )
    target_probe_s: float = setting(
        "RELAY_TARGET_PROBE_S",
        30.0,
        "probe interval of an account, pixel or app X refuses (403/404): one event each",
        above=0,
    )
    max_lane_events: int = setting(
        "RELAY_MAX_LANE_EVENTS",
        20_000,
        "events held in memory per account; its partitions pause above",
        minimum=1,
    )
    max_lane_bytes: int = setting(
        "RELAY_MAX_LANE_BYTES", 32 * 1024 * 1024, "bytes held in memory per account", minimum=1
    )
    max_buffered_bytes: int = setting(
        "RELAY_MAX_BUFFERED_BYTES",
        256 * 1024 * 1024,
        "partitions pause above this many bytes held in memory",
        minimum=1,
    )
    app_tags_refresh_s: float = setting(
        "RELAY_APP_TAGS_REFRESH_S",
        900.0,
        "how often an account's app event tags (conversion windows) are read again",
        above=0,
    )
    lane_idle_s: float = setting(
        "RELAY_LANE_IDLE_S", 30.0, "an account idle this long leaves memory", above=0
    )
    request_timeout_s: float = setting(
        "RELAY_REQUEST_TIMEOUT_S", 30.0, "timeout of one request to X", above=0, maximum=600
    )
    # Full jitter: attempt n waits up to min(max, base * 2**(n-1)); X's Retry-After wins.
    retry_base_s: float = setting(
        "RELAY_RETRY_BASE_S", 0.5, "backoff base between attempts", above=0
    )
    retry_max_s: float = setting("RELAY_RETRY_MAX_S", 60.0, "backoff cap", above=0)
    max_buffered_events: int = setting(
        "RELAY_MAX_BUFFERED_EVENTS",
        50_000,
        "partitions pause above this many events held in memory",
        minimum=1,
    )
    shutdown_grace_s: float = setting(
        "RELAY_SHUTDOWN_GRACE_S",
        20.0,
        "how long SIGTERM waits for in-flight work",
        minimum=0,
        maximum=3_600,
    )
    kafka_group_instance_id: str | None = setting(
        "RELAY_KAFKA_GROUP_INSTANCE_ID",
        None,
        "static group membership: a restart under the same id keeps its partitions "
        "(default: $POD_NAME when set)",
    )
    broker_lost_exit_s: float = setting(
        "RELAY_BROKER_LOST_EXIT_S",
        120.0,
        "a worker without Kafka this long exits with code 75 (to be restarted)",
        above=0,
    )
    dlq_max_redrives: int = setting(
        "RELAY_DLQ_MAX_REDRIVES",
        3,
        "relay dlq redrive leaves alone a record redriven this often (unless --force)",
        minimum=1,
    )
    dlq_redact: bool = setting(
        "RELAY_DLQ_REDACT",
        False,
        "dead letters of ingest failures: emails, phones and device ids replaced by their "
        "hashes, IP and user agent dropped (default: the original bytes)",
    )
    ledger_window_s: float = setting(
        "RELAY_LEDGER_WINDOW_S",
        3600.0,
        "how long delivered keys are remembered against replays",
        above=0,
    )
    ledger_flush_interval_s: float = setting(
        "RELAY_LEDGER_FLUSH_INTERVAL_S",
        0.1,
        "longest a delivered key waits for its ledger write",
        above=0,
        maximum=3_600,
    )
    ledger_flush_keys: int = setting(
        "RELAY_LEDGER_FLUSH_KEYS",
        2000,
        "a ledger write starts as soon as this many delivered keys wait",
        minimum=1,
    )
    ledger_max_unacked_keys: int = setting(
        "RELAY_LEDGER_MAX_UNACKED_KEYS",
        20_000,
        "events in requests to X plus delivered keys the ledger has not written yet, at most; "
        "no request starts above it (a kill -9 sends at most this many, plus one request's, "
        "to X twice)",
        minimum=1,
    )
    ledger_max_keys: int = setting(
        "RELAY_LEDGER_MAX_KEYS",
        500_000,
        "delivered keys kept in memory at most (about 50 bytes each); above, the oldest are "
        "forgotten before the window ends (their replays would be sent again)",
        minimum=1,
    )
    log_level: str = setting("RELAY_LOG_LEVEL", "INFO", "log level", choices=LOG_LEVELS)
    log_format: str = setting(
        "RELAY_LOG_FORMAT", "text", "json: one object a line; text", choices=LOG_FORMATS
    )
    event_loop: str = setting(
        "RELAY_EVENT_LOOP",
        "uvloop",
        "event loop of relay run: uvloop (less CPU per event; asyncio's own where uvloop "
        "cannot be imported) or asyncio",
        choices=EVENT_LOOPS,
    )
    # The relay's own topics (never the input topics), when it creates them.
    topic_partitions: int = setting(
        "RELAY_TOPIC_PARTITIONS", 8, "partitions of the relay's own topics", minimum=1
    )
    topic_replication_factor: int = setting(
        "RELAY_TOPIC_REPLICATION_FACTOR",
        3,
        "replication factor of the relay's own topics",
        minimum=1,
        maximum=32_767,
    )
    topic_retention_ms: int = setting(
        "RELAY_TOPIC_RETENTION_MS",
        7 * 86_400_000,
        "retention of the outbound, attributions and delayed topics",
        minimum=1,
    )
    dlq_retention_ms: int = setting(
        "RELAY_DLQ_RETENTION_MS", 28 * 86_400_000, "retention of the DLQ", minimum=1
    )
    kafka_idempotence: str = setting(
        "RELAY_KAFKA_IDEMPOTENCE",
        "auto",
        "idempotent producers: auto (where the broker serves them), true, false",
        choices=IDEMPOTENCE_MODES,
    )
    metrics_top_accounts: int = setting(
        "RELAY_METRICS_TOP_ACCOUNTS",
        10,
        "accounts with their own metric label; the rest are summed as other",
        minimum=0,
        maximum=1_000,
    )

    def __post_init__(self) -> None:
        problems = [*row_problems(SETTINGS, self), *self._relation_problems()]
        if problems:
            raise ConfigError(problems=problems)

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            row = BY_NAME_OF_FIELD.get(f.name)
            value = getattr(self, f.name)
            shown = MASK if row is not None and row.from_file and value else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    def _relation_problems(self) -> list[Problem]:
        problems = [*self._kafka_problems(), *self._api_problems()]
        if self.retry_base_s > self.retry_max_s:
            problems.append(Problem("RELAY_RETRY_BASE_S", "must not exceed RELAY_RETRY_MAX_S"))
        app_inputs = sorted(t for t, f in self.inputs.items() if f in APP_FORMATS)
        if app_inputs and not self.device_id_hmac_key:
            problems.append(
                Problem(
                    "RELAY_DEVICE_ID_HMAC_KEY",
                    f"is required: RELAY_INPUTS binds app inputs ({', '.join(app_inputs)}),"
                    " whose device ids are hashed with the partner's key (base64)",
                )
            )
        return problems

    def _kafka_problems(self) -> list[Problem]:
        problems: list[Problem] = []

        def needs(name: str, what: str) -> None:
            problems.append(Problem(name, f"is needed {what}"))

        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
        if sasl and not mechanism:
            needs("RELAY_KAFKA_SASL_MECHANISM", f"with RELAY_KAFKA_SECURITY_PROTOCOL={protocol}")
        if mechanism and not sasl:
            problems.append(
                Problem(
                    "RELAY_KAFKA_SASL_MECHANISM",
                    "needs RELAY_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)",
                )
            )
        if sasl and mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not self.kafka_sasl_username:
                needs("RELAY_KAFKA_SASL_USERNAME", f"for {mechanism}")
            if not self.kafka_sasl_password:
                needs("RELAY_KAFKA_SASL_PASSWORD", f"for {mechanism}")
        provider = self.kafka_oauth_token_provider
        if sasl and mechanism == "OAUTHBEARER" and not provider:
            needs("RELAY_KAFKA_OAUTH_TOKEN_PROVIDER", "for OAUTHBEARER")
        if provider == "oidc":
            if not self.kafka_oauth_token_url:
                needs("RELAY_KAFKA_OAUTH_TOKEN_URL", "for the oidc token provider")
            if not self.kafka_oauth_client_id:
                needs("RELAY_KAFKA_OAUTH_CLIENT_ID", "for the oidc token provider")
            if not self.kafka_oauth_client_secret:
                needs("RELAY_KAFKA_OAUTH_CLIENT_SECRET", "for the oidc token provider")
        if provider == "aws-msk-iam" and not self.kafka_aws_region:
            needs("RELAY_KAFKA_AWS_REGION", "for the aws-msk-iam token provider")
        if not tls:
            for name, value in (
                ("RELAY_KAFKA_SSL_CA_FILE", self.kafka_ssl_ca_file),
                ("RELAY_KAFKA_SSL_CERT_FILE", self.kafka_ssl_cert_file),
                ("RELAY_KAFKA_SSL_KEY_FILE", self.kafka_ssl_key_file),
            ):
                if value:
                    problems.append(
                        Problem(name, "needs RELAY_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
                    )
        if self.kafka_ssl_key_file and not self.kafka_ssl_cert_file:
            problems.append(Problem("RELAY_KAFKA_SSL_KEY_FILE", "needs RELAY_KAFKA_SSL_CERT_FILE"))
        return problems

    def _api_problems(self) -> list[Problem]:
        parts = urlsplit(self.api_base_url)
        if parts.scheme == "http" and not is_loopback(parts.hostname) and not self.api_allow_http:
            message = (
                "http:// is refused for a host other than loopback (X's API is https); "
                "set RELAY_API_ALLOW_HTTP=true to allow it"
            )
            return [Problem("RELAY_API_BASE_URL", message)]
        return []

    @property
    def revoke_drain_s(self) -> float:
        # Well inside the session timeout, so that the member is not evicted mid-drain
        # (unset until the worker asks the broker: then real Kafka's default, 10 s).
        session_ms = self.kafka_session_timeout_ms or 10_000
        return min(self.shutdown_grace_s, session_ms / 2000)

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
    def delivered_topic(self) -> str:
        return f"{self.topic_prefix}.delivered"

    @property
    def delayed_topic(self) -> str:
        return f"{self.topic_prefix}.delayed"

    @property
    def ingest_group(self) -> str:
        return f"{self.topic_prefix}-ingest"

    @property
    def deliver_group(self) -> str:
        return f"{self.topic_prefix}-deliver"


SETTINGS: Final = rows_of(Settings)
BY_NAME: Final = {row.name: row for row in SETTINGS}
BY_NAME_OF_FIELD: Final = {row.field: row for row in SETTINGS if row.field}
# The sandbox budgets default to the relay's.
DEFAULT_ACCOUNT_LIMIT: Final = int(BY_NAME["RELAY_ACCOUNT_LIMIT"].default or 0)
DEFAULT_ACCOUNT_WINDOW_S: Final = float(BY_NAME["RELAY_ACCOUNT_WINDOW_S"].default or 0)


def default_mapping_path() -> Path:
    """The packaged demo/test defaults shared by the sandbox and the relay."""
    return Path(str(resources.files("relay").joinpath("data", "defaults.toml")))


def read_document(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a dict, with a clear error that never quotes the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    if path.suffix.lower() == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {_unquoted(exc)}") from None
    else:
        import yaml  # only for YAML files: TOML (the packaged defaults) needs none of it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            reason = _yaml_reason(exc)
            raise ConfigError(f"config file {path} is not valid YAML: {reason}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/mapping at the top")
    return data


def _yaml_reason(exc: Exception) -> str:
    # str(exc) quotes the offending line, which may hold a secret: position and problem only.
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{_unquoted(problem)} at {where}"


def _unquoted(reason: object) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", str(reason))


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
    """The typed entries of a mapping document; errors name the entry, never its contents."""
    pixels: dict[str, Pixel] = {}
    entries = data.get("pixels", []) or []
    if not isinstance(entries, list):
        raise ConfigError("pixels must be a list of tables with id and account_id")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not entry.get("id") or not entry.get("account_id"):
            raise ConfigError(f"pixels entry {index + 1} needs id and account_id")
        event_ids = entry.get("event_ids", [])
        if not isinstance(event_ids, list):
            raise ConfigError(f"pixels entry {index + 1}: event_ids must be a list")
        pixel = Pixel(
            id=str(entry["id"]),
            account_id=str(entry["account_id"]),
            event_ids=tuple(str(e) for e in event_ids),
            pixel_token=Secret(str(entry.get("pixel_token", ""))),
            segment_events=_names(entry, "segment_events", f"pixels entry {index + 1}"),
        )
        pixels[pixel.id] = pixel
    raw_creds = data.get("credentials")
    if raw_creds is not None and not isinstance(raw_creds, Mapping):
        raise ConfigError("credentials must be a table")
    accounts = tuple(str(a) for a in (raw_creds or {}).get("accounts", []))
    return MappingFile(
        pixels=pixels,
        credentials=credentials_from(raw_creds),
        token_accounts=accounts,
        apps=_apps(_entries(data, "apps")),
        branch_apps=_branch_apps(_entries(data, "branch_apps")),
        named_credentials=_named_credentials(data.get("delivery_credentials")),
    )


def _entries(data: Mapping[str, Any], key: str) -> list[Any]:
    entries = data.get(key) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{key} must be a list of tables")
    return entries


def _names(entry: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    """An optional table of names (event names, tokens) -> values, all strings."""
    table = entry.get(key) or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: {key} must be a table of names")
    return {str(name).strip(): str(value).strip() for name, value in table.items()}


def _apps(entries: list[Any]) -> dict[str, App]:
    """`[[apps]]`: id, os_type, account_id and optional event maps; errors name the entry."""
    from relay.formats.event_maps import CONVERSION_TYPES  # no import cycle: a leaf module

    apps: dict[str, App] = {}
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or not all(
            entry.get(k) for k in ("id", "os_type", "account_id")
        ):
            raise ConfigError(f"apps entry {index} needs id, os_type and account_id")
        app_id, os_type = str(entry["id"]), str(entry["os_type"]).upper()
        where = f"apps entry {index} ({app_id})"
        if os_type not in ("IOS", "ANDROID"):
            raise ConfigError(f"{where}: os_type must be IOS or ANDROID")
        maps = {fmt: _names(entry, key, where) for fmt, key in EVENT_MAP_KEYS.items()}
        for fmt, names in maps.items():
            wrong = sorted(v for v in names.values() if v and v not in CONVERSION_TYPES)
            if wrong:
                raise ConfigError(
                    f"{where}: {EVENT_MAP_KEYS[fmt]} maps to unknown conversion types {wrong}"
                    ' ("" marks a name that is not a conversion)'
                )
        apps[app_id] = App(app_id, os_type, str(entry["account_id"]), maps)
    return apps


def _branch_apps(entries: list[Any]) -> dict[str, BranchApp]:
    """`[[branch_apps]]`: id and the store ids of the Branch app's iOS and Android apps."""
    branch: dict[str, BranchApp] = {}
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or not entry.get("id"):
            raise ConfigError(f"branch_apps entry {index} needs id")
        ios, android = entry.get("ios_app_id"), entry.get("android_app_id")
        app = BranchApp(str(entry["id"]), ios and str(ios), android and str(android))
        branch[app.id] = app
    return branch


CREDENTIAL_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
CREDENTIAL_VALUES: Final = (
    "consumer_key",
    "consumer_secret",
    "access_token",
    "access_token_secret",
)


def _named_credentials(raw: Any) -> tuple[NamedCredentials, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError("delivery_credentials must be a table of named tables")
    result = []
    for name, entry in raw.items():
        if not CREDENTIAL_NAME.fullmatch(str(name)) or str(name) == "default":
            raise ConfigError(f"delivery_credentials: {name!r} is no usable name")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"delivery_credentials.{name} must be a table")
        lists = {}
        for what in ("accounts", "pixels", "apps"):
            values = entry.get(what, [])
            if not isinstance(values, list):
                raise ConfigError(f"delivery_credentials.{name}.{what} must be a list")
            lists[what] = tuple(str(v) for v in values)
        creds = credentials_from({k: entry.get(k, "") for k in CREDENTIAL_VALUES})
        result.append(NamedCredentials(str(name), creds or Credentials.empty(), **lists))
    return tuple(result)


def _with_env_credentials(
    mapping: MappingFile, env: Mapping[str, str], problems: list[Problem]
) -> MappingFile:
    """`RELAY_CREDENTIALS_<NAME>_<VALUE>` (or `..._FILE`) win over the file's values."""
    resolved = []
    for named in mapping.named_credentials:
        prefix = "RELAY_CREDENTIALS_" + re.sub(r"[^A-Z0-9]", "_", named.name.upper()) + "_"
        values: dict[str, str] = {}
        for key in CREDENTIAL_VALUES:
            variable = prefix + key.upper()
            if env.get(variable):
                values[key] = env[variable]
            elif env.get(variable + "_FILE"):
                try:
                    values[key] = Path(env[variable + "_FILE"]).read_text("utf-8").strip()
                except OSError as exc:
                    problems.append(Problem(variable + "_FILE", f"cannot read: {exc.strerror}"))
        creds = named.credentials
        merged = Credentials(
            values.get("consumer_key", creds.consumer_key),
            Secret(values["consumer_secret"])
            if "consumer_secret" in values
            else creds.consumer_secret,
            values.get("access_token", creds.access_token),
            Secret(values["access_token_secret"])
            if "access_token_secret" in values
            else creds.access_token_secret,
        )
        if not merged.complete:
            problems.append(
                Problem("RELAY_CONFIG", f"delivery_credentials.{named.name} lacks a value")
            )
        resolved.append(dataclasses.replace(named, credentials=merged))
    return dataclasses.replace(mapping, named_credentials=tuple(resolved))


def load_mapping(path: Path | None) -> MappingFile:
    return parse_mapping(read_document(path)) if path else MappingFile()


def _read(name: str, env: Mapping[str, str], problems: list[Problem]) -> Any:
    """The typed value of one variable, None when unset; a problem is recorded, not raised."""
    row = BY_NAME[name]
    try:
        text = read_text(row, env)
        return None if text is None else parse_text(row, text)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _credentials(env: Mapping[str, str], problems: list[Problem]) -> Credentials | None:
    names = ("RELAY_CONSUMER_KEY", "RELAY_CONSUMER_SECRET", "RELAY_ACCESS_TOKEN")
    values = [_read(n, env, problems) for n in (*names, "RELAY_ACCESS_TOKEN_SECRET")]
    if not any(values):
        return None
    key, secret, token, token_secret = values
    return Credentials(key or "", secret or Secret(""), token or "", token_secret or Secret(""))


def env_credentials(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from the `RELAY_*` variables, when any is set (they win over the file)."""
    problems: list[Problem] = []
    credentials = _credentials(env, problems)
    if problems:
        raise ConfigError(problems=problems)
    return credentials


def mapping_path_for(env: Mapping[str, str], problems: list[Problem]) -> Path | None:
    """`RELAY_CONFIG`; else, when the API is a local sandbox, the packaged defaults that the
    sandbox itself starts with (so `relay sandbox` + `relay run` work with no file at all)."""
    path = _read("RELAY_CONFIG", env, problems)
    if path is not None:
        return Path(path)
    url = _read("RELAY_API_BASE_URL", env, []) or BY_NAME["RELAY_API_BASE_URL"].default
    return default_mapping_path() if urlsplit(str(url)).hostname in LOOPBACK_HOSTS else None


def _mapping(env: Mapping[str, str], problems: list[Problem]) -> MappingFile:
    path = mapping_path_for(env, problems)
    if path is None:
        return MappingFile()
    try:
        return load_mapping(Path(path))
    except ConfigError as exc:
        problems.append(Problem("RELAY_CONFIG", str(exc)))
        return MappingFile()


def log_format_from(env: Mapping[str, str]) -> str:
    """`RELAY_LOG_FORMAT`, for logging set up before the settings load (text when invalid)."""
    fmt = _read("RELAY_LOG_FORMAT", env, [])
    return str(fmt or BY_NAME["RELAY_LOG_FORMAT"].default)


def setting_value(env: Mapping[str, str], name: str) -> Any:
    """One variable's typed, checked value (its default when unset), for code that reads a
    relay variable without building `Settings` (the sandbox's budgets); ConfigError names it."""
    row = BY_NAME[name]
    problems: list[Problem] = []
    value = _read(name, env, problems)
    value = row.default_value() if value is None and not problems else value
    message = None if problems else value_problem(row, value)
    if message is not None:
        problems.append(Problem(name, message))
    if problems:
        raise ConfigError(problems=problems)
    return value


def log_level_from(env: Mapping[str, str]) -> str:
    """`RELAY_LOG_LEVEL`, for logging set up before the settings load (INFO when invalid)."""
    level = _read("RELAY_LOG_LEVEL", env, [])
    return str(level or BY_NAME["RELAY_LOG_LEVEL"].default)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from an environment mapping (default: `os.environ`) plus overrides.

    Raises one `ConfigError` listing every problem (`.problems`), each naming its variable.
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for row in SETTINGS:
        if row.field and row.field not in overrides:
            value = _read(row.name, env, problems)
            if value is not None:
                values[row.field] = value
    if "kafka_group_instance_id" not in values and env.get("POD_NAME"):
        values["kafka_group_instance_id"] = env["POD_NAME"]
    if "mapping" not in overrides:
        values["mapping"] = _with_env_credentials(_mapping(env, problems), env, problems)
    if "credentials" not in overrides:
        mapping: MappingFile = overrides.get("mapping") or values["mapping"]
        values["credentials"] = (
            _credentials(env, problems) or mapping.credentials or Credentials.empty()
        )
    values.update(overrides)
    try:
        settings = Settings(**values)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems=list(dict.fromkeys(problems)))
    return settings


def offline_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for offline tools (`relay validate`): the mapping and normalization settings,
    without the worker's own checks (its inputs and their HMAC key)."""
    env = dict(os.environ if environ is None else environ)
    env["RELAY_INPUTS"] = str(BY_NAME["RELAY_INPUTS"].default)
    return load_settings(env)
