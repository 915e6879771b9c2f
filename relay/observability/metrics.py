"""The worker's Prometheus metrics, in one registry per worker.

Labels are bounded: stage, topic, partition, kind, reason, error class, HTTP status, the set
of identifiers an event carried, and `account` only for the top-N accounts (the rest are
summed as `account="other"`). Never an email, phone, device id or event id.

Every labelled series that an alert or a panel reads exists from the start at 0 for its
known label values, so that `increase()` sees the first event too.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from relay import __version__, hotpath
from relay.observability import coverage
from relay.observability.accounts import AccountsCollector, AccountSource
from relay.observability.latency import BatchHistogram

STAGES: Final = ("ingest", "deliver")
KINDS: Final = ("web", "app")
DEAD_LETTER_CLASSES: Final[Mapping[str, tuple[str, ...]]] = {
    "ingest": (
        "invalid_json",
        "invalid_encoding",
        "invalid_event",
        "too_large",
        "unknown_pixel",
        "unknown_app",
    ),
    "deliver": ("invalid_outbound", "rejected", "retries_exhausted"),
}
DROP_REASONS: Final = (
    "opted_out",
    "not_a_conversion",
    "unmapped_event",
    "limit_ad_tracking",
    "no_device_id",
    "zero_device_id",
    "duplicate_skipped",
)
ENDPOINTS: Final = ("measurement/conversions", "conversion_event", "conversion_attribution")
STATUSES: Final = ("200", "400", "401", "403", "404", "429", "500", "503", "error")
RETRY_REASONS: Final = ("rate_limited", "split", "outage", "error", "withheld")
ATTRIBUTION_OUTCOMES: Final = ("attributed", "unattributed")
DEFAULT_TOP_ACCOUNTS: Final = 10
# Record timestamp to X's 2xx: from sub-second (live) to hours (a backlog after an outage).
LATENCY_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
API_LATENCY_BUCKETS_S: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_SIZE_BUCKETS: Final = (1, 10, 50, 100, 200, 300, 400, 500)
PARTITION_LABELS: Final = ("stage", "topic", "partition")


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        top_accounts: int = DEFAULT_TOP_ACCOUNTS,
        clock: Any = time.time,
    ):
        self.registry = registry or CollectorRegistry()
        self._clock = clock
        r = self.registry
        # The default registry has these; a worker's own registry needs its own instances.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info(
            "relay_build",
            "The relay's version, and whether its hot path runs compiled.",
            registry=r,
        ).info({"version": __version__, "compiled": str(hotpath.running_compiled()).lower()})
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        self.consumed = counter("relay_events_consumed", "Records read from Kafka.", "stage")
        self.ingested = counter(
            "relay_events_ingested", "Valid events written to the outbound topic.", "kind"
        )
        self.dropped = counter("relay_events_dropped", "Events deliberately not sent.", "reason")
        self.dead_lettered = counter(
            "relay_events_dead_lettered",
            "Records written to the dead-letter topic.",
            "stage",
            "error_class",
        )
        self.delivered = counter("relay_events_delivered", "Events X accepted (2xx).", "kind")
        self.delivery_latency = BatchHistogram(
            "relay_delivery_latency_seconds",
            "End to end: the input record's Kafka timestamp to X's 2xx.",
            "kind",
            KINDS,
            LATENCY_BUCKETS_S,
            registry=r,
        )
        self.identifiers = counter(
            "relay_delivered_identifiers",
            "Delivered events by the set of identifiers they carried (match coverage).",
            "kind",
            "identifiers",
        )
        self.attributions = counter(
            "relay_attributions", "App conversions by X's attribution outcome.", "outcome"
        )
        self.api_requests = counter(
            "relay_api_requests", "Requests to the X Ads API by outcome.", "endpoint", "status"
        )
        self.api_latency = histogram(
            "relay_api_request_duration_seconds",
            "X Ads API request latency.",
            API_LATENCY_BUCKETS_S,
            "endpoint",
        )
        self.retries = counter(
            "relay_delivery_retries", "Batches scheduled for another attempt.", "reason"
        )
        self.batch_size = histogram(
            "relay_batch_events", "Events per request sent to X.", BATCH_SIZE_BUCKETS, "kind"
        )
        self.ratelimit_wait = counter(
            "relay_ratelimit_wait_seconds", "Time batches waited for account budget."
        )
        self.buffered = gauge(
            "relay_buffered_events", "Events held in memory by the deliver stage."
        )
        self.paused_partitions = gauge(
            "relay_paused_partitions", "Partitions paused for backpressure."
        )
        self.credentials_ok = gauge(
            "relay_credentials_ok", "0 while X rejects the credentials (401)."
        )
        self.credentials_ok.set(1)
        self.revocations = counter(
            "relay_partition_revocations",
            "Rebalances that took partitions from this worker.",
            "stage",
        )
        # The delivery engine: what holds it, what X said.
        self.delivery_blocked = gauge(
            "relay_delivery_blocked",
            "1 while delivery is held: circuit_open (X failing), credential_rejected (401), "
            "ledger_behind (RELAY_LEDGER_MAX_UNACKED_KEYS reached: the delivered ledger's writes "
            "are not acknowledged).",
            "reason",
        )
        for reason in ("circuit_open", "credential_rejected", "ledger_behind"):
            self.delivery_blocked.labels(reason).set(0)
        self.held_targets = gauge(
            "relay_held_targets", "Accounts, pixels or apps X refuses (403/404)."
        )
        self.target_holds = counter(
            "relay_target_holds", "Targets held after a 403/404.", "kind", "code"
        )
        self.processed_mismatch = counter(
            "relay_conversions_processed_mismatch",
            "2xx answers whose conversions_processed differs from what was sent.",
            "kind",
        )
        self.before_reset = counter(
            "relay_requests_before_reset",
            "Requests that went to X after X had announced their account's reset, before it.",
        )
        self.tokens_refunded = counter(
            "relay_ratelimit_tokens_refunded", "Budget given back for events X did not count."
        )
        self.commits = counter("relay_offset_commits", "Offset commits by stage.", "stage")
        self.lag = gauge(
            "relay_consumer_lag_records",
            "High-water mark minus the group's committed offset, per assigned partition.",
            *PARTITION_LABELS,
        )
        self.uncommitted = gauge(
            "relay_consumer_uncommitted_records",
            "Records read but not committed yet (read again after a crash), per partition.",
            *PARTITION_LABELS,
        )
        self.ledger_keys = counter(
            "relay_ledger_keys",
            "Delivered keys by ledger action: recorded, written, rebuilt, evicted.",
            "action",
        )
        self.ledger_pending = gauge(
            "relay_ledger_pending_keys",
            "Delivered keys recorded but not yet acknowledged by the broker.",
        )
        self.ledger_held = gauge(
            "relay_ledger_held_keys", "Delivered keys held in memory for the duplicate check."
        )
        self.ledger_write_failures = counter(
            "relay_ledger_write_failures", "Ledger writes the broker did not acknowledge."
        )
        self.parked = counter("relay_events_parked", "Records parked on the delayed topic.")
        self.delayed_held = gauge(
            "relay_delayed_partitions_held",
            "Delayed-topic partitions paused until their head record is due.",
        )
        self.accounts = AccountsCollector(top_accounts, registry=r)
        self._initialise()
        # total() reads one counter, not the whole registry (process metrics read /proc).
        self._counters = {
            next(iter(c.describe())).name: c for c in vars(self).values() if isinstance(c, Counter)
        }

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, buckets: Sequence[float], *labels: str) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def _initialise(self) -> None:
        for stage in STAGES:
            self.consumed.labels(stage)
            self.commits.labels(stage)
            self.revocations.labels(stage)
            for error_class in DEAD_LETTER_CLASSES[stage]:
                self.dead_lettered.labels(stage, error_class)
        for kind in KINDS:
            self.ingested.labels(kind)
            self.delivered.labels(kind)
            self.batch_size.labels(kind)
        for label in coverage.all_labels(coverage.WEB_IDENTIFIERS):
            self.identifiers.labels("web", label)
        for label in coverage.all_labels(coverage.APP_IDENTIFIERS):
            self.identifiers.labels("app", label)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for endpoint in ENDPOINTS:
            self.api_latency.labels(endpoint)
            for status in STATUSES:
                self.api_requests.labels(endpoint, status)
        for reason in RETRY_REASONS:
            self.retries.labels(reason)
        for outcome in ATTRIBUTION_OUTCOMES:
            self.attributions.labels(outcome)

    # -- what the stages call ------------------------------------------------------------

    def observe_delivered(
        self,
        kind: str,
        payloads: Sequence[Mapping[str, Any] | bytes | str],
        record_timestamps_ms: Iterable[int],
        *,
        account: str | None = None,
    ) -> None:
        """X accepted `payloads` (2xx): count them, their identifiers and their latency."""
        self.delivered.labels(kind).inc(len(payloads))
        # <= 0: the broker gave no timestamp; a clock behind the broker's counts as 0.
        self.delivery_latency.observe_ages(kind, self._clock() * 1000, record_timestamps_ms)
        weak = 0
        counts = _identifier_sets(kind, payloads)
        if not coverage.LABELS.issuperset(counts):
            raise ValueError("not an identifier set label")
        for label, count in counts.items():
            self.identifiers.labels(kind, label).inc(count)
            if coverage.is_weak(label):
                weak += count
        if account is not None:
            self.accounts.observe_matches(account, len(payloads), weak)

    def observe_attribution(self, attributed: bool) -> None:
        """X's answer to one app conversion: attributed (to X or a partner) or not."""
        self.attributions.labels("attributed" if attributed else "unattributed").inc()

    def set_lag(self, stage: str, topic: str, partition: int, lag: int, uncommitted: int) -> None:
        self.lag.labels(stage, topic, str(partition)).set(max(lag, 0))
        self.uncommitted.labels(stage, topic, str(partition)).set(max(uncommitted, 0))

    def forget_partition(self, stage: str, topic: str, partition: int) -> None:
        """A revoked partition is another worker's now: its lag series go."""
        for gauge in (self.lag, self.uncommitted):
            with contextlib.suppress(KeyError):
                gauge.remove(stage, topic, str(partition))

    def watch_accounts(self, source: AccountSource) -> None:
        """Where the budget state of the accounts comes from at scrape time."""
        self.accounts.source = source

    def total(self, name: str, **labels: str) -> float:
        """Sum of a counter over all its labels (`relay_events_delivered`, ...), or over
        those matching `labels` (`kind="app"`)."""
        counter = self._counters.get(name)
        families = counter.collect() if counter is not None else self.registry.collect()
        total = 0.0
        for metric in families:
            if metric.name == name:
                total += sum(
                    s.value
                    for s in metric.samples
                    if s.name.endswith("_total")
                    and all(s.labels.get(k) == v for k, v in labels.items())
                )
        return total


def _identifier_sets(
    kind: str, payloads: Sequence[Mapping[str, Any] | bytes | str]
) -> dict[str, int]:
    """Identifier set label -> events. A str is the label already (the outbound routing
    line's; checked by the caller): web batches of them are tallied in C."""
    identifier_set = coverage.identifier_set
    try:
        tallied: Iterable[tuple[Any, int]] = collections.Counter(payloads).items()
    except TypeError:  # an app conversion's params (a dict) cannot be hashed
        tallied = ((payload, 1) for payload in payloads)
    counts: dict[str, int] = {}
    for payload, count in tallied:
        label = payload if type(payload) is str else identifier_set(kind, payload)
        counts[label] = counts.get(label, 0) + count
    return counts
