"""The worker's Prometheus metrics, in one registry per worker.

Labels are bounded: stage, topic, format, kind, reason, error class, HTTP status, X's code.
Never an account, email, device id or event id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "relay_events_consumed", "Records read from Kafka.", ["stage"], registry=r
        )
        self.ingested = Counter(
            "relay_events_ingested",
            "Valid events written to the outbound topic.",
            ["kind"],
            registry=r,
        )
        self.dropped = Counter(
            "relay_events_dropped", "Events deliberately not sent.", ["reason"], registry=r
        )
        self.dead_lettered = Counter(
            "relay_events_dead_lettered",
            "Records written to the dead-letter topic.",
            ["stage", "error_class"],
            registry=r,
        )
        self.delivered = Counter(
            "relay_events_delivered", "Events X accepted (2xx).", ["kind"], registry=r
        )
        self.api_requests = Counter(
            "relay_api_requests",
            "Requests to the X Ads API by outcome.",
            ["endpoint", "status"],
            registry=r,
        )
        self.api_latency = Histogram(
            "relay_api_request_duration_seconds",
            "X Ads API request latency.",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.retries = Counter(
            "relay_delivery_retries",
            "Batches scheduled for another attempt.",
            ["reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "relay_batch_events",
            "Events per request sent to X.",
            ["kind"],
            buckets=(1, 10, 50, 100, 200, 300, 400, 500),
            registry=r,
        )
        self.ratelimit_wait = Counter(
            "relay_ratelimit_wait_seconds",
            "Time batches waited for account budget.",
            registry=r,
        )
        self.buffered = Gauge(
            "relay_buffered_events", "Events held in memory by the deliver stage.", registry=r
        )
        self.paused_partitions = Gauge(
            "relay_paused_partitions", "Partitions paused for backpressure.", registry=r
        )
        self.credentials_ok = Gauge(
            "relay_credentials_ok", "0 while X rejects the credentials (401).", registry=r
        )
        self.credentials_ok.set(1)
        self.revocations = Counter(
            "relay_partition_revocations",
            "Rebalances that took partitions from this worker.",
            ["stage"],
            registry=r,
        )
        # The delivery engine: what holds it, what X said, what app conversions got back.
        self.delivery_blocked = Gauge(
            "relay_delivery_blocked",
            "1 while delivery is held: circuit_open (X failing), credential_rejected (401).",
            ["reason"],
            registry=r,
        )
        self.held_targets = Gauge(
            "relay_held_targets", "Accounts, pixels or apps X refuses (403/404).", registry=r
        )
        self.target_holds = Counter(
            "relay_target_holds", "Targets held after a 403/404.", ["kind", "code"], registry=r
        )
        self.processed_mismatch = Counter(
            "relay_conversions_processed_mismatch",
            "2xx answers whose conversions_processed differs from what was sent.",
            ["kind"],
            registry=r,
        )
        self.attributions = Counter(
            "relay_app_attributions",
            "App conversions X answered, by attribution outcome.",
            ["outcome", "mode"],
            registry=r,
        )
        self.tokens_refunded = Counter(
            "relay_ratelimit_tokens_refunded",
            "Budget given back for events X did not count.",
            registry=r,
        )
        self.commits = Counter(
            "relay_offset_commits", "Offset commits by stage.", ["stage"], registry=r
        )
        self.ledger_keys = Counter(
            "relay_ledger_keys",
            "Delivered keys by ledger action: recorded, written, rebuilt, evicted.",
            ["action"],
            registry=r,
        )
        self.ledger_pending = Gauge(
            "relay_ledger_pending_keys",
            "Delivered keys recorded but not yet acknowledged by the broker.",
            registry=r,
        )
        self.ledger_held = Gauge(
            "relay_ledger_held_keys",
            "Delivered keys held in memory for the duplicate check.",
            registry=r,
        )
        self.ledger_write_failures = Counter(
            "relay_ledger_write_failures",
            "Ledger writes the broker did not acknowledge.",
            registry=r,
        )

        self.parked = Counter(
            "relay_events_parked", "Records parked on the delayed topic.", registry=r
        )
        self.delayed_held = Gauge(
            "relay_delayed_partitions_held",
            "Delayed-topic partitions paused until their head record is due.",
            registry=r,
        )

    def total(self, name: str) -> float:
        """Sum of a counter over all its labels (`relay_events_delivered`, ...)."""
        total = 0.0
        for metric in self.registry.collect():
            if metric.name == name:
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return total
