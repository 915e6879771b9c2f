"""`relay bench latency`: p50/p95/p99 from the Kafka append to X's 2xx, at a share (default
50%) of the capacity measured in the same run, for web and app conversions.

Per kind: a capacity probe (a backlog through `relay run`, steady events/s), then the same
relay process fed at `load` x capacity for `duration_s`, each record stamped with its append
time (the record timestamp, epoch ms); the latency of an event is the sandbox's acceptance
time (`received_at` in its journal, ms) minus that stamp, both on this machine's clock. The
sandbox answers without added latency here, so the numbers are the relay's own.
Where it goes: each event's outbound record (written by the ingest stage, its Kafka
timestamp) splits it into ingest (append -> outbound) and delivery (outbound -> X's 2xx,
the batch's linger included).
Target: p99 <= linger + 150 ms.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Final

import orjson
from aiokafka import ConsumerRecord

from relay.config import load_settings
from relay.pipeline import outbound
from relay.tools.bench.accounting import received_s
from relay.tools.bench.configs import default_config
from relay.tools.bench.context import BenchTimeout, Run, StallGuard
from relay.tools.bench.e2e import DeadLettered, input_spec, measure
from relay.tools.bench.events import Event, Kind, entry_identity, mobile_events, web_events
from relay.tools.bench.kafka_io import PacedFeed, read_topic
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import ProcessDied, Stack, accepted, open_stack
from relay.tools.bench.throughput import relay_settings

HEADROOM_MS: Final = 150.0
WARMUP: Final = 500
PERCENTILES: Final = (50, 95, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(math.ceil(p / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def latencies_ms(
    entries: Sequence[dict[str, Any]], appended_ms: dict[str, int], kind: Kind
) -> list[float]:
    """Per event (its first acceptance): acceptance time minus append time, sorted."""
    found: dict[str, float] = {}
    for entry in entries:
        identity = entry_identity(entry, kind)
        appended = appended_ms.get(identity)
        if appended is not None and identity not in found:
            found[identity] = received_s(entry) * 1000 - appended
    return sorted(found.values())


def worst_seconds(
    entries: Sequence[dict[str, Any]], appended_ms: dict[str, int], kind: Kind, top: int = 3
) -> list[dict[str, float]]:
    """The `top` seconds of the feed (by append time, from its start) whose events waited
    longest at p99: whether a tail is a few stalls or the whole run."""
    by_second: dict[int, list[float]] = {}
    seen: set[str] = set()
    start = min(appended_ms.values(), default=0)
    for entry in entries:
        identity = entry_identity(entry, kind)
        appended = appended_ms.get(identity)
        if appended is None or identity in seen:
            continue
        seen.add(identity)
        second = (appended - start) // 1000
        by_second.setdefault(second, []).append(received_s(entry) * 1000 - appended)
    p99s = [(percentile(sorted(v), 99), second) for second, v in by_second.items()]
    return [
        {"second": second, "p99_ms": round(p99, 1)} for p99, second in sorted(p99s, reverse=True)
    ][:top]


def outbound_identity(payload: bytes, kind: Kind) -> str | None:
    """The identity of an outbound record's event, as `entry_identity` gives it."""
    try:
        params = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    value = params.get("conversion_time" if kind == "mobile" else "conversion_id")
    return None if value is None else str(value)


def stage_split(
    records: Sequence[ConsumerRecord],
    entries: Sequence[dict[str, Any]],
    appended_ms: dict[str, int],
    kind: Kind,
) -> dict[str, float]:
    """p50/p95/p99 of ingest (append -> outbound record) and delivery (-> X's 2xx)."""
    written: dict[str, int] = {}
    for record in records:
        try:
            carried = outbound.decode_all(record.value)  # a bundle's events share its append
        except outbound.UnknownOutbound:
            continue
        for event in carried:
            identity = outbound_identity(event.payload, kind)
            if identity is not None and identity in appended_ms:
                written.setdefault(identity, record.timestamp)
    ingest: list[float] = []
    deliver: list[float] = []
    seen: set[str] = set()
    for entry in entries:
        identity = entry_identity(entry, kind)
        if identity in seen or identity not in written:
            continue
        seen.add(identity)
        ingest.append(written[identity] - appended_ms[identity])
        deliver.append(received_s(entry) * 1000 - written[identity])
    split: dict[str, float] = {}
    for name, values in (("ingest", sorted(ingest)), ("deliver", sorted(deliver))):
        for p in PERCENTILES if values else ():
            split[f"{name}_p{p}_ms"] = round(percentile(values, p), 1)
    return split


def _events(kind: Kind, count: int, seed: int) -> list[Event]:
    config = default_config()
    if kind == "web":
        return web_events(count, config.pixels, seed=seed)
    return mobile_events(count, config.path, seed=seed)


async def _one_kind(
    stack: Stack, kind: Kind, capacity_events: int, duration_s: float, load: float
) -> dict[str, Any]:
    run = stack.run
    prefix = f"latency-{kind}"
    run.say(f"{kind}: capacity probe on {capacity_events:,} events")
    probe, relay = await measure(
        stack,
        prefix,
        kind,
        _events(kind, capacity_events, 1),
        _events(kind, WARMUP, 2),
        keep_running=True,
    )
    capacity = probe.steady_per_s or 0.0
    rate = capacity * load
    count = max(int(rate * duration_s), 1)
    run.say(f"{kind}: capacity {capacity:,.0f}/s; feeding {rate:,.0f}/s for {duration_s:g}s")
    topic, _ = input_spec(prefix, kind)
    feed = PacedFeed(stack.bootstrap, topic, rate)
    events = _events(kind, count, 3)
    base = accepted(await stack.client.stats(), kind)
    await asyncio.wait_for(feed.run(events), duration_s * 3 + 30)

    stall = StallGuard(f"{kind}: the paced events")

    async def delivered() -> bool:
        done = accepted(await stack.client.stats(), kind) - base
        stall.seen(done)
        return done >= count

    await run.wait_for(delivered, f"{kind}: every paced event", alive=stack.check_alive)
    await relay.stop()
    entries = (await stack.client.journal("app" if kind == "mobile" else "web"))[base:]
    values = latencies_ms(entries, feed.appended_ms, kind)
    result: dict[str, Any] = {
        "capacity_per_s": round(capacity, 1),
        "load": load,
        "rate_per_s": round(rate, 1),
        "events": count,
        "measured": len(values),
    }
    result.update({f"p{p}_ms": round(percentile(values, p), 1) for p in PERCENTILES if values})
    result["worst_seconds"] = worst_seconds(entries, feed.appended_ms, kind)
    records = await read_topic(stack.bootstrap, f"{prefix}.outbound", timeout_s=120)
    result.update(stage_split(records, entries, feed.appended_ms, kind))
    return result


async def run_latency(
    run: Run, out: Outcome, kind: str, duration_s: float, capacity_events: int, load: float
) -> None:
    kinds: list[Kind] = ["web", "mobile"] if kind == "all" else [kind]  # type: ignore[list-item]
    linger_ms = load_settings(run.relay_env).linger_s * 1000
    out.result["linger_ms"] = linger_ms
    settings = relay_settings("mobile" if "mobile" in kinds else "web")
    out.settings = run.settings_note(settings)
    # Before the stack starts: the sandbox takes its budget from these too (else X's default
    # 60,000 per account and window stops a long run with 429s until the window turns).
    saved = run.relay_env
    run.relay_env = {**settings, **saved}
    try:
        async with open_stack(run, default_config().path) as stack:
            for each in kinds:
                try:
                    out.result[each] = await _one_kind(
                        stack, each, capacity_events, duration_s, load
                    )
                except (ProcessDied, DeadLettered, BenchTimeout) as exc:
                    out.result[each] = {"error": " / ".join(str(exc).splitlines()[-6:])}
                    run.keep_logs = True
                    run.say(f"{each}: {exc}")
                p99 = out.result[each].get("p99_ms")
                out.targets.append(
                    Target(f"{each} p99 append to 2xx", p99, "<=", linger_ms + HEADROOM_MS, "ms")
                )
    finally:
        run.relay_env = saved
