"""What the demo tells at the end: one event as received and as X received it, then a row
per feed, and how delivery went (requests, batch sizes, budget waits, retries, dead letters
by class), all from the worker's own metrics, the input topic and the sandbox's journal.

Feeds are rows (`FeedRow`): the web feed today; another feed is one more row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiokafka import ConsumerRecord

from relay.config import Settings
from relay.observability.metrics import Metrics
from relay.tools.dlq_read import read_to_snapshot, snapshot_consumer


@dataclass(frozen=True)
class FeedRow:
    feed: str
    produced: int
    delivered: int
    dead_lettered: int
    dropped: int


@dataclass
class DeliveryFacts:
    requests: Counter[str] = field(default_factory=Counter)  # by HTTP status
    batches: int = 0
    batched_events: int = 0
    batch_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    ratelimit_wait_s: float = 0.0
    retries: Counter[str] = field(default_factory=Counter)  # by reason
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, class)
    dropped: Counter[str] = field(default_factory=Counter)  # by reason


def delivery_facts(metrics: Metrics) -> DeliveryFacts:
    facts = DeliveryFacts()
    for metric in metrics.registry.collect():
        for s in metric.samples:
            labels = s.labels
            if s.name == "relay_api_requests_total":
                facts.requests[labels["status"]] += int(s.value)
            elif s.name == "relay_batch_events_count":
                facts.batches += int(s.value)
            elif s.name == "relay_batch_events_sum":
                facts.batched_events += int(s.value)
            elif s.name == "relay_batch_events_bucket":
                le = float(labels["le"])
                facts.batch_buckets[le] = facts.batch_buckets.get(le, 0.0) + s.value
            elif s.name == "relay_ratelimit_wait_seconds_total":
                facts.ratelimit_wait_s += s.value
            elif s.name == "relay_delivery_retries_total":
                facts.retries[labels["reason"]] += int(s.value)
            elif s.name == "relay_events_dead_lettered_total":
                facts.dead_letters[(labels["stage"], labels["error_class"])] += int(s.value)
            elif s.name == "relay_events_dropped_total":
                facts.dropped[labels["reason"]] += int(s.value)
    return facts


def render_facts(facts: DeliveryFacts) -> list[str]:
    statuses = ", ".join(f"{n:,} x {status}" for status, n in sorted(facts.requests.items()))
    lines = [f"requests to X: {sum(facts.requests.values()):,} ({statuses or 'none'})"]
    if facts.batches:
        previous, spread = 0.0, []
        for le, cumulative in sorted(facts.batch_buckets.items()):
            if cumulative > previous and le != float("inf"):
                spread.append(f"<={le:g}: {cumulative - previous:,.0f}")
            previous = cumulative
        lines.append(
            f"batches: {facts.batches:,}, {facts.batched_events / facts.batches:,.0f} events "
            f"on average ({'; '.join(spread)})"
        )
    lines.append(f"waits for account budget: {facts.ratelimit_wait_s:.1f}s in all")
    retried = ", ".join(f"{n:,} {reason}" for reason, n in sorted(facts.retries.items()))
    lines.append(f"retries: {retried or 'none'}")
    if facts.dead_letters:
        lines.append("dead letters by class:")
        lines += [
            f"  {stage:<8} {error_class:<20} {n:>7,}"
            for (stage, error_class), n in sorted(facts.dead_letters.items())
        ]
    else:
        lines.append("dead letters: none")
    if facts.dropped:
        dropped = ", ".join(f"{n:,} {reason}" for reason, n in sorted(facts.dropped.items()))
        lines.append(f"dropped on purpose: {dropped}")
    return lines


def render_feeds(rows: list[FeedRow]) -> list[str]:
    header = f"{'feed':<6} {'produced':>10} {'delivered':>10} {'dead-lettered':>14} {'dropped':>8}"
    return [header] + [
        f"{r.feed:<6} {r.produced:>10,} {r.delivered:>10,} {r.dead_lettered:>14,} {r.dropped:>8,}"
        for r in rows
    ]


@dataclass(frozen=True)
class SampleEvent:
    topic: str
    partition: int
    offset: int
    received: Any  # the input record, parsed
    sent: dict[str, Any]  # the conversion as X received it
    pixel_id: str


async def first_journal_entry(sandbox_url: str) -> dict[str, Any] | None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox_url}/_sandbox/journal", params={"limit": "1"}) as resp,
    ):
        resp.raise_for_status()
        body: dict[str, Any] = await resp.json()
    entries: list[dict[str, Any]] = body.get("conversions") or []
    return entries[0] if entries else None


async def sample_event(settings: Settings, sandbox_url: str, topic: str) -> SampleEvent | None:
    """The first conversion X accepted, and the input record it came from."""
    entry = await first_journal_entry(sandbox_url)
    if entry is None:
        return None
    sent: dict[str, Any] = entry["conversion"]
    wanted = sent.get("conversion_id")
    consumer = snapshot_consumer(settings, None)
    await consumer.start()
    try:
        async for _, records in read_to_snapshot(consumer, topic):
            for record in records:
                received = _json(record)
                if isinstance(received, dict) and received.get("conversion_id") == wanted:
                    return SampleEvent(
                        topic,
                        record.partition,
                        record.offset,
                        received,
                        sent,
                        str(entry.get("pixel_id")),
                    )
    finally:
        await consumer.stop()
    return None


def _json(record: ConsumerRecord) -> Any:
    try:
        return orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None


def render_sample(sample: SampleEvent) -> list[str]:
    return [
        f"one event as received on {sample.topic} (partition {sample.partition}, offset "
        f"{sample.offset}; synthetic data):",
        "  " + orjson.dumps(sample.received).decode(),
        f"as X received it (POST /12/measurement/conversions/{sample.pixel_id}, from the "
        "sandbox journal): identifiers normalized and SHA-256 hashed",
        "  " + orjson.dumps(sample.sent).decode(),
    ]
