"""Shared by the scenarios that disturb a run (chaos, outage, faults, broker-pause): a paced
feed in the background, waiting for progress, and waiting until every event is accounted for;
`disturbed_web_run` is the whole run of the three that disturb one paced web feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from relay.tools.bench.accounting import (
    Accounting,
    account,
    dead_letter_identities,
    dead_letters,
    received_s,
)
from relay.tools.bench.configs import default_config
from relay.tools.bench.context import Run, StallGuard
from relay.tools.bench.e2e import Relays, input_spec, refuse_dead_lettered, start_and_warm
from relay.tools.bench.events import Event, Kind, web_events
from relay.tools.bench.kafka_io import PacedFeed
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.procs import Child
from relay.tools.bench.stack import Stack, accepted, open_stack
from relay.tools.bench.throughput import relay_settings

QUIET_S: Final = 90.0  # no progress for this long: what is missing now is lost
DLQ_EVERY_S: Final = 5.0
WARMUP: Final = 200  # delivered before the disturbed feed starts: the group joins are done
WARMUP_SEED: Final = 99
FEED_S: Final = 60.0  # a disturbed web feed spans this long on a full run
QUICK_FEED_S: Final = 10.0


def feed_seconds(run: Run) -> float:
    return QUICK_FEED_S if run.quick else FEED_S


def progress(stats: dict[str, Any], kind: Kind) -> int:
    """Distinct events accepted so far, as far as the counters tell (web: X's dedup)."""
    if kind == "mobile":
        return accepted(stats, kind)  # X has no dedup key for app conversions
    return int(stats["conversions_accepted"]) - int(stats["duplicates"])


async def wait_progress(stack: Stack, kind: Kind, target: int, what: str, prefix: str) -> None:
    """Until `target` distinct events are delivered; fails early when nothing moves, or when
    nothing was delivered but dead letters pile up (the relay cannot deliver this kind)."""
    stall = StallGuard(what, QUIET_S)
    checked = [time.monotonic()]

    async def reached() -> bool:
        done = progress(await stack.client.stats(), kind)
        stall.seen(done)
        if done == 0 and time.monotonic() - checked[0] > DLQ_EVERY_S:
            checked[0] = time.monotonic()
            await refuse_dead_lettered(stack, prefix, 1)
        return done >= target

    await stack.run.wait_for(reached, what, poll_s=0.05, alive=stack.check_alive)


@contextlib.asynccontextmanager
async def paced(
    stack: Stack, topic: str, events: Sequence[Event], rate_per_s: float
) -> AsyncIterator[asyncio.Task[None]]:
    """Feeds `events` at `rate_per_s` in the background; cancelled when the block ends."""
    feed = PacedFeed(stack.bootstrap, topic, rate_per_s)
    task = asyncio.create_task(feed.run(events))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Settled:
    accounting: Accounting
    entries: list[dict[str, Any]]
    stats: dict[str, Any]
    complete: bool  # every event delivered or dead-lettered before the wait gave up
    dead_letter_classes: dict[str, int] = field(default_factory=dict)


async def await_settled(
    stack: Stack, prefix: str, kind: Kind, produced: Sequence[str], *, quiet_s: float = QUIET_S
) -> Settled:
    """Waits until every produced event is in the journal or the DLQ (checked on the
    counters, confirmed on the journal), or nothing moved for `quiet_s`, or the deadline."""
    run = stack.run
    wanted = len(produced)
    dead = 0
    last_dlq = 0.0
    last_seen: tuple[int, int] = (-1, -1)
    last_change = time.monotonic()
    last_say = 0.0
    while True:
        stats = await stack.client.stats()
        done = progress(stats, kind)
        if time.monotonic() - last_dlq > DLQ_EVERY_S or done + dead >= wanted:
            dead = len(set(await dead_letter_identities(stack, prefix, kind)))
            last_dlq = time.monotonic()
        if (done, dead) != last_seen:
            last_seen, last_change = (done, dead), time.monotonic()
        if time.monotonic() - last_say > 5:
            last_say = time.monotonic()
            run.say(f"{done:,} delivered + {dead:,} dead-lettered of {wanted:,}")
        if done + dead >= wanted:
            settled = await _settle(stack, prefix, kind, produced, stats, complete=True)
            if settled.accounting.lost == 0:
                return settled
        stack.check_alive(stack.broker, stack.sandbox)
        if time.monotonic() - last_change > quiet_s or run.remaining_s() < 15:
            run.say("giving up waiting: what is missing now counts as lost")
            return await _settle(stack, prefix, kind, produced, stats, complete=False)
        await asyncio.sleep(0.5)


async def _settle(
    stack: Stack,
    prefix: str,
    kind: Kind,
    produced: Sequence[str],
    stats: dict[str, Any],
    *,
    complete: bool,
) -> Settled:
    entries = await stack.client.journal("app" if kind == "mobile" else "web")
    dlq, classes = await dead_letters(stack, prefix, kind)
    return Settled(account(produced, entries, dlq, kind), entries, stats, complete, classes)


def first_after(entries: Sequence[dict[str, Any]], moment_s: float) -> float | None:
    """Seconds from `moment_s` (epoch) to the first acceptance after it."""
    after = [t for t in (received_s(e) for e in entries) if t >= moment_s]
    return min(after) - moment_s if after else None


async def hold(stack: Stack, seconds: float, *alive: Child) -> None:
    """Let `seconds` pass while checking that the processes `alive` (default: all) run."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        stack.check_alive(*alive)
        await asyncio.sleep(0.5)


@dataclass
class Disturbed:
    settled: Settled
    relay_survived: bool  # the same `relay run` processes from start to end


async def disturbed_web_run(
    run: Run,
    out: Outcome,
    prefix: str,
    events: int,
    disturb: Callable[[Stack, Relays], Awaitable[None]],
    *,
    seed: int,
    after_feed: Callable[[Stack], Awaitable[None]] | None = None,
    inspect: Callable[[Stack], Awaitable[None]] | None = None,
) -> Disturbed:
    """`events` web events fed at an even pace over `feed_seconds` into a warmed-up `relay
    run`; `disturb` runs while they are fed (it waits for the progress it wants itself),
    `after_feed` once the feed is done, `inspect` once every event is accounted for (the
    processes still run). Returns when every event is accounted for."""
    config = default_config()
    run.relay_env = {**relay_settings("web"), **run.relay_env}
    out.settings = run.settings_note()
    batch = web_events(events, config.pixels, seed=seed)
    async with open_stack(run, config.path) as stack:
        topic, _ = input_spec(prefix, "web")
        warmup = web_events(WARMUP, config.pixels, seed=WARMUP_SEED)
        relay, _ = await start_and_warm(stack, prefix, "web", warmup)
        async with paced(stack, topic, batch, events / feed_seconds(run)) as feeding:
            await disturb(stack, relay)
            await feeding
        if after_feed is not None:
            await after_feed(stack)
        settled = await await_settled(stack, prefix, "web", [e.identity for e in [*warmup, *batch]])
        if inspect is not None:
            await inspect(stack)
        survived = relay.running
        await relay.stop()
    return Disturbed(settled, survived)
