"""Metrics, logs and the lag sampler: series that exist from the start, end-to-end latency,
match coverage, the top-N account view, JSON logs and rate-limited lines."""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from relay import __version__, hotpath
from relay.errors import ConfigError
from relay.kafka import ensure_topics
from relay.observability import coverage
from relay.observability.accounts import AccountState
from relay.observability.lag import LagSampler
from relay.observability.logs import (
    JsonFormatter,
    OperationalLog,
    RateLimitedLogger,
    configure_logging,
)
from relay.observability.metrics import DEAD_LETTER_CLASSES, DROP_REASONS, Metrics
from tests.kafka_helpers import produce_values, wait_for


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_alerted_series_exist_at_zero_before_the_first_event() -> None:
    m = Metrics()
    assert sample(m, "relay_events_delivered_total", kind="web") == 0
    assert (
        sample(m, "relay_events_dead_lettered_total", stage="deliver", error_class="rejected") == 0
    )
    assert (
        sample(m, "relay_events_dead_lettered_total", stage="ingest", error_class="invalid_json")
        == 0
    )
    status = {"endpoint": "measurement/conversions", "status": "429"}
    assert m.registry.get_sample_value("relay_api_requests_total", status) == 0
    assert sample(m, "relay_delivery_retries_total", reason="split") == 0
    assert sample(m, "relay_attributions_total", outcome="unattributed") == 0
    compiled = str(hotpath.running_compiled()).lower()
    assert sample(m, "relay_build_info", version=__version__, compiled=compiled) == 1
    assert sample(m, "process_resident_memory_bytes") is not None
    assert sample(m, "relay_account_budget_remaining_events", account="other") == 0


def test_delivered_events_count_latency_and_identifiers() -> None:
    m = Metrics(clock=lambda: 1000.0)
    payloads = [
        {"identifiers": [{"twclid": "x"}, {"hashed_email": "h"}]},
        {"identifiers": [{"hashed_email": "h"}, {"ip_address": "1.2.3.4", "user_agent": "ua"}]},
        {"identifiers": [{"hashed_phone_number": "p"}, {"ip_address": "1.2.3.4"}]},
    ]
    m.observe_delivered("web", payloads, [998_500, 999_900, -1], account="acct1")
    assert sample(m, "relay_events_delivered_total", kind="web") == 3
    assert sample(m, "relay_delivery_latency_seconds_count", kind="web") == 2  # -1: no timestamp
    assert sample(m, "relay_delivery_latency_seconds_sum", kind="web") == pytest.approx(1.6)
    assert (
        sample(m, "relay_delivered_identifiers_total", kind="web", identifiers="twclid+email") == 1
    )
    assert (
        sample(m, "relay_delivered_identifiers_total", kind="web", identifiers="email+ip_ua") == 1
    )
    # An IP without a user agent is no IP + UA pair.
    assert sample(m, "relay_delivered_identifiers_total", kind="web", identifiers="phone") == 1
    m.observe_attribution(True)
    assert sample(m, "relay_attributions_total", outcome="attributed") == 1


def test_identifier_sets_are_a_bounded_label() -> None:
    assert (
        coverage.identifier_set("app", {"hashed_device_id": "d", "device_ip_address": "1"})
        == "device_id"
    )
    assert coverage.identifier_set("web", {}) == "none"
    assert len(coverage.all_labels(coverage.IDENTIFIERS)) == 32
    assert coverage.is_weak("email+ip_ua") and not coverage.is_weak("twclid+email")


def test_only_the_top_accounts_get_a_label_and_the_rest_are_summed() -> None:
    m = Metrics(top_accounts=2)
    states = [
        AccountState(f"a{i}", remaining_events=10.0 * i, throttle_wait_s=0.5 * i, held_events=i)
        for i in range(6)
    ]
    m.watch_accounts(lambda: states)
    m.observe_delivered("web", [{"identifiers": [{"twclid": "t"}]}] * 4, [], account="a5")
    m.observe_delivered("web", [{"identifiers": [{"hashed_email": "e"}]}] * 2, [], account="a0")
    remaining = {
        s.labels["account"]: s.value
        for f in m.registry.collect()
        if f.name == "relay_account_budget_remaining_events"
        for s in f.samples
    }
    assert remaining == {"a5": 50.0, "a4": 40.0, "other": 0 + 10 + 20 + 30}
    assert sample(m, "relay_account_throttle_wait_seconds", account="other") == 1.5
    assert sample(m, "relay_account_held_events", account="other") == 0 + 1 + 2 + 3
    assert sample(m, "relay_account_weak_match_ratio", account="a5") == 0
    assert sample(m, "relay_account_weak_match_ratio", account="other") == 1
    assert sample(m, "relay_accounts") == 6


def test_json_logs_carry_level_logger_message_and_coordinates() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("relay.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        OperationalLog(logger).dead_lettered(
            "deliver", "rejected", 3, "bad event", account="acct1", target="px1", status=400
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["level"] == "WARNING" and line["logger"] == "relay.test.json"
    assert line["message"] == "dead-lettered 3 rejected record(s): bad event"
    assert (line["account"], line["target"], line["status"], line["count"]) == (
        "acct1",
        "px1",
        400,
        3,
    )
    assert line["ts"].endswith("Z")


def test_rate_limited_lines_say_how_many_were_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLogger(
        logging.getLogger("relay.test.rl"), interval_s=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, "relay.test.rl"):
        assert limited.log("429", logging.WARNING, "held")
        assert not limited.log("429", logging.WARNING, "held")
        assert not limited.log("429", logging.WARNING, "held")
        assert limited.log("split", logging.WARNING, "split")  # another kind: its own line
        now[0] = 61.0
        assert limited.log("429", logging.WARNING, "held")
    assert [r.getMessage() for r in caplog.records] == ["held", "split", "held"]
    assert caplog.records[-1].__dict__["suppressed"] == 2


def test_an_invalid_log_level_or_format_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="log level 'LOUD' is not one of DEBUG, INFO"):
        configure_logging("LOUD")
    with pytest.raises(ConfigError, match="log format 'xml' is not one of text, json"):
        configure_logging("INFO", "xml")


@pytest.mark.parametrize(
    ("variable", "value"), [("RELAY_LOG_LEVEL", "chatty"), ("RELAY_LOG_FORMAT", "xml")]
)
def test_the_worker_refuses_a_bad_log_setting(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from relay.cli import main

    monkeypatch.setenv(variable, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert variable in err and "must be one of" in err


@dataclass
class Committed:
    offsets: dict[TopicPartition, int]

    def __call__(self, tp: TopicPartition) -> int | None:
        return self.offsets.get(tp)


async def test_lag_comes_from_the_high_water_mark(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.lag"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    await produce_values(kafka_bootstrap, topic, [b"%d" % i for i in range(50)])
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}-lag",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        read = 0
        while read < 30:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=30 - read)
            read += sum(len(v) for v in batch.values())
        metrics = Metrics()
        committed = Committed({})
        sampler = LagSampler("deliver", consumer, metrics, committed)
        labels = {"stage": "deliver", "topic": topic, "partition": "0"}

        async def lag() -> tuple[float | None, float | None]:
            await sampler.sample()
            return (
                metrics.registry.get_sample_value("relay_consumer_lag_records", labels),
                metrics.registry.get_sample_value("relay_consumer_uncommitted_records", labels),
            )

        # Nothing committed by the group yet: all 50 are lag, the 30 read are uncommitted.
        assert await lag() == (50, 30)
        await consumer.commit({tp: 20})
        committed.offsets[tp] = 20
        assert await lag() == (30, 10)
        consumer.assign([])
        await wait_for(lambda: not consumer.assignment(), 5, "unassignment")
        assert await lag() == (None, None), "a partition no longer assigned keeps no series"
    finally:
        await consumer.stop()


def test_every_drop_reason_and_dead_letter_class_in_the_code_starts_at_zero() -> None:
    # A reason or class added to the code but not to the metrics would miss its first event.
    package = Path(__file__).resolve().parent.parent / "relay"
    source = "\n".join(p.read_text() for p in package.rglob("*.py"))
    reasons = set(re.findall(r'DroppedEvent\(\s*"([a-z_]+)"', source))
    ingest = set(re.findall(r'error_class="([a-z_]+)"', source))
    deliver = set(
        re.findall(r'(?:Failure\(\s*"deliver",|_failure_for\(\s*batch,)\s*"([a-z_]+)"', source)
    )
    assert reasons and ingest and deliver
    assert reasons <= set(DROP_REASONS)
    assert ingest <= set(DEAD_LETTER_CLASSES["ingest"])
    assert deliver <= set(DEAD_LETTER_CLASSES["deliver"])


def test_web_identifier_sets_read_from_the_payload_bytes_match_the_decoded_reading() -> None:
    from relay.config import default_mapping_path, load_settings
    from relay.formats.web import adapt_web
    from relay.pipeline import outbound
    from relay.pipeline.ingest import Ingestor
    from relay.tools.produce import generate

    settings = load_settings({"RELAY_CONFIG": str(default_mapping_path())})
    ctx = Ingestor(settings).ctx
    seen = set()
    variants = [(), ("email",), ("phone", "email"), ("ip_address",), ("user_agent", "phone")]
    for i, synthetic in enumerate(generate("web", 3000, settings.mapping, seed=7)):
        if synthetic.expect != "deliver":
            continue
        record = json.loads(synthetic.value)
        for name in variants[i % len(variants)]:
            record.pop(name, None)
        if i % 3 == 0:
            record["twclid"] = "23opevjt88psuo13lu8d020qkn"
        # A string value that spells a key must not count as that identifier.
        record["description"] = 'mentions "twclid": and "hashed_email": in text'
        routed = outbound.decode(outbound.encode(adapt_web(record, ctx)))
        by_bytes = coverage.identifier_set("web", routed.payload)
        assert by_bytes == coverage.identifier_set("web", routed.payload_dict())
        seen.add(by_bytes)
    assert len(seen) >= 3, seen
    with pytest.raises(TypeError):
        coverage.identifier_set("app", b"{}")


def test_the_latency_histogram_buckets_ages_as_prometheus_clients_histogram_does() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from relay.observability.latency import BatchHistogram

    bounds = (0.05, 0.1, 0.25, 1.0, 5.0)
    now_ms = 1_000_000.5
    # Ages on and around the bounds, beyond the last, of a clock behind the broker's (0),
    # and stamps the broker did not give (<= 0: not observed).
    stamps = [-1, 0, 1_000_500, 999_950, 999_950.5, 999_900, 999_000, 990_000, 999_999, 999_750]
    ages = [max(0.0, now_ms - ts) / 1000 for ts in stamps if ts > 0]
    registry = CollectorRegistry()
    ours = BatchHistogram("ours", "d", "kind", ["web"], bounds, registry)
    theirs = Histogram("theirs", "d", ["kind"], buckets=bounds, registry=registry)
    ours.observe_ages("web", now_ms, stamps)  # type: ignore[arg-type]  # floats: on a bound
    for age in ages:
        theirs.labels("web").observe(age)
    for bound in (*[str(b) for b in bounds], "+Inf"):
        labels = {"kind": "web", "le": bound}
        assert registry.get_sample_value("ours_bucket", labels) == registry.get_sample_value(
            "theirs_bucket", labels
        ), bound
    assert registry.get_sample_value("ours_count", {"kind": "web"}) == len(ages)
    assert registry.get_sample_value("ours_sum", {"kind": "web"}) == pytest.approx(sum(ages))
