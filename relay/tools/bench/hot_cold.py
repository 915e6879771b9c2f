"""`relay bench hot-cold`: does a hot account hold back the cold accounts on its partition?

All accounts are chosen so that their records land on the same partition (of the input and
the outbound topic). The budget (RELAY_ACCOUNT_LIMIT / _WINDOW_S, relay and sandbox
alike) is a tenth of the hot backlog, so the hot account spends its budget and keeps the rest
of its backlog; the cold accounts send a trickle at a tenth of their budget's rate.

Phase A: the cold trickle alone (baseline). Phase B: the same with the hot backlog held by
the deliver stage: it is written to the outbound topic (as ingest would have written it) on
the cold accounts' partition, before the worker starts, so the ingest stage has no part in
it. A warm-up of cold events goes through ingest behind the backlog; once it is delivered
(the worker has read the whole backlog, spent the hot budget and parked the rest), the
trickle starts. `catch_up_s` says how long that took: cold events produced during it wait
for the deliver stage to read through the hot backlog on their partition, which the target
does not measure; then the trickle waits until X has accepted the hot account's whole
budget (`trickle_starts_s`): the scenario is a spent budget, and the window's burst of the
hot account is X's load, not the relay's. Each phase is a fresh `relay run` on fresh
topics, the sandbox reset between them. Latency = the sandbox's acceptance minus the cold
record's append time on the input topic. Target: cold p99 in B <= 2 x cold p99 in A.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from relay.kafka import DEFAULT_PARTITIONS
from relay.tools.bench.configs import BenchConfig, accounts_on_one_partition, write_config
from relay.tools.bench.context import Run
from relay.tools.bench.e2e import input_spec
from relay.tools.bench.events import outbound_web_events_for, web_events_for
from relay.tools.bench.kafka_io import PacedFeed, fill
from relay.tools.bench.latency import latencies_ms, percentile
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import Stack, open_stack

COLD_RATE_PER_S: Final = 2.0  # per cold account
# The budget: a tenth of the hot backlog per window, refilled at 10x the cold rate (the
# relay's bucket refills evenly over the window), so that the cold accounts never wait for
# their own budget while the hot one has spent its own.
HOT_BACKLOG_PER_BUDGET: Final = 10
REFILL_PER_COLD_RATE: Final = 10
SLOWDOWN_TARGET: Final = 2.0
LATE_S: Final = 30.0  # after the trickle, how long cold events may still arrive


async def _phase(
    stack: Stack, config: BenchConfig, name: str, hot_events: int, duration_s: float, limit: int
) -> dict[str, Any]:
    run = stack.run
    prefix = f"hotcold-{name}"
    topic, inputs = input_spec(prefix, "web")
    hot, cold = config.pixels[0], config.pixels[1:]
    await stack.client.reset()
    if hot_events:
        run.say(f"{name}: hot backlog of {hot_events:,} events on {prefix}.outbound")
        await fill(
            stack.bootstrap,
            f"{prefix}.outbound",
            outbound_web_events_for(hot, hot_events, seed=21),
        )
    warmup = web_events_for(cold, 2, seed=20)
    await fill(stack.bootstrap, topic, warmup)
    relay = await stack.start_relay(prefix, inputs)
    started = time.monotonic()

    async def warm() -> bool:
        return int((await stack.client.stats())["conversions_accepted"]) >= len(warmup)

    await run.wait_for(warm, f"{name}: the warm-up", alive=stack.check_alive)
    catch_up_s = time.monotonic() - started
    if hot_events:
        # The scenario is a spent budget: X has taken the hot account's whole window (it
        # goes out as fast as X answers, a burst X itself must absorb) before the trickle.
        async def spent() -> bool:
            accepted = int((await stack.client.stats())["conversions_accepted"])
            return accepted - len(warmup) >= limit

        await run.wait_for(spent, f"{name}: the hot budget spent", alive=stack.check_alive)
    spent_s = time.monotonic() - started
    detail = f" (behind the hot backlog), the hot budget ({limit:,}) spent at {spent_s:.1f}s"
    run.say(
        f"{name}: warm-up delivered {catch_up_s:.1f}s after the worker started"
        + (detail if hot_events else "")
        + "; the cold trickle starts now"
    )
    per_account = max(int(COLD_RATE_PER_S * duration_s), 1)
    trickle = web_events_for(cold, per_account, seed=22 + hot_events)
    run.say(f"{name}: cold trickle, {COLD_RATE_PER_S * len(cold):g}/s for {duration_s:g}s")
    feed = PacedFeed(stack.bootstrap, topic, COLD_RATE_PER_S * len(cold))
    await asyncio.wait_for(feed.run(trickle), duration_s * 3 + 30)
    wanted = {e.identity for e in trickle}
    until = time.monotonic() + LATE_S
    values: list[float] = []
    while time.monotonic() < until:
        entries = await stack.client.journal("web")
        values = latencies_ms(entries, feed.appended_ms, "web")
        if len(values) >= len(wanted):
            break
        await asyncio.sleep(1)
    stats = await stack.client.stats()
    await relay.stop()
    result: dict[str, Any] = {
        "catch_up_s": round(catch_up_s, 1),
        "trickle_starts_s": round(spent_s, 1),
        "trickle_starts": "after the warm-up cold events, written behind the hot backlog, "
        "were delivered (catch_up_s after the worker started) and X accepted the hot "
        "account's whole budget (trickle_starts_s)",
        "cold_events": len(wanted),
        "cold_delivered": len(values),
        "accepted_total": stats["conversions_accepted"],
    }
    if values and len(values) == len(wanted):
        result.update({f"p{p}_ms": round(percentile(values, p), 1) for p in (50, 95, 99)})
    return result


async def run_hot_cold(
    run: Run, out: Outcome, hot_events: int, cold_accounts: int, duration_s: float
) -> None:
    limit = max(hot_events // HOT_BACKLOG_PER_BUDGET, 1)
    window_s = limit / (COLD_RATE_PER_S * REFILL_PER_COLD_RATE)
    budget = {"RELAY_ACCOUNT_LIMIT": str(limit), "RELAY_ACCOUNT_WINDOW_S": f"{window_s:g}"}
    run.relay_env = {**budget, **run.relay_env}
    out.settings = run.settings_note() + " (the sandbox has the same budget)"
    accounts = accounts_on_one_partition(cold_accounts + 1, DEFAULT_PARTITIONS)
    config = write_config(run.work_dir / "hot-cold.toml", accounts)
    out.result.update(
        hot_account=accounts[0],
        hot_events=hot_events,
        cold_accounts=cold_accounts,
        limit=limit,
        window_s=window_s,
        cold_rate_per_s=COLD_RATE_PER_S,
    )
    async with open_stack(run, config.path) as stack:
        out.result["baseline"] = await _phase(stack, config, "baseline", 0, duration_s, limit)
        out.result["with_hot"] = await _phase(stack, config, "hot", hot_events, duration_s, limit)
    base = out.result["baseline"].get("p99_ms")
    hot = out.result["with_hot"].get("p99_ms")
    ratio = hot / base if base and hot is not None else None
    out.result["p99_ratio"] = ratio
    out.targets.append(Target("cold p99 with hot / without", ratio, "<=", SLOWDOWN_TARGET))
