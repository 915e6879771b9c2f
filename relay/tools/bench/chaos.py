"""`relay bench chaos --kill9 N [--kind web|mobile]`: a backlog over several accounts (web:
the token's four accounts; mobile: eight accounts' apps, as an MMP posts them: one account
alone is capped at RELAY_MAX_IN_FLIGHT_PER_ACCOUNT requests in flight, which made a 100,000
conversion feed of the demo apps' one account take a quarter of an hour), `relay run` killed
with SIGKILL at N random moments (drawn as shares of the run's progress) and started again
each time.

Then every produced event is looked up: lost = neither in the sandbox's journal nor in the
dead-letter topic (target 0); duplicates = journal entries beyond one per event (web: the
conversions X saw again and deduplicated by conversion_id; app: each one a double count at
X), bucketed by the kill they follow. Each kill's bound is the README's: what the relay may
have in flight with its settings (min(RELAY_MAX_IN_FLIGHT_REQUESTS, accounts x
RELAY_MAX_IN_FLIGHT_PER_ACCOUNT) requests, x the batch size for web), plus the delivered keys
whose ledger write was not yet acknowledged (the README's rate x (flush interval + 2 x ack
latency)), read from the worker itself just before the kill: its `relay_ledger_pending_keys`,
plus what it delivered between that reading and the kill. On a loaded machine the worker's
own event loop adds to the write's latency, and for app conversions this term can pass the
first.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import aiohttp

from relay.broker import free_port
from relay.config import Settings, load_settings
from relay.tools.bench.accounting import duplicates_between, received_s
from relay.tools.bench.configs import default_config, write_app_config
from relay.tools.bench.context import Run
from relay.tools.bench.disturb import await_settled, first_after, progress, wait_progress
from relay.tools.bench.e2e import input_spec
from relay.tools.bench.events import Kind, mobile_events, web_events
from relay.tools.bench.kafka_io import fill
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import Stack, open_stack
from relay.tools.bench.throughput import MOBILE_ACCOUNTS, relay_settings

PREFIX: Final = "chaos"
FIRST_KILL_SHARE: Final = 0.05
LAST_KILL_SHARE: Final = 0.9
RATE_WINDOW_S: Final = 2.0  # the delivery rate at a kill: acceptances in this long before it


def _settings(env: Mapping[str, str]) -> Settings:
    return load_settings({k: v for k, v in env.items() if k.startswith("RELAY_")})


def in_flight_bound(kind: Kind, env: Mapping[str, str], accounts: int) -> int:
    settings = _settings(env)
    requests = min(settings.max_in_flight_requests, accounts * settings.max_in_flight_per_account)
    return requests * settings.web_batch_size if kind == "web" else requests


def ledger_terms(
    pending: Sequence[float], rates: Sequence[float], gaps_s: Sequence[float]
) -> list[int]:
    """Keys delivered but not yet in an acknowledged ledger write at each kill: those the
    worker said were pending, and what it may have delivered until the kill."""
    return [math.ceil(p + r * g) for p, r, g in zip(pending, rates, gaps_s, strict=True)]


async def pending_ledger_keys(stack: Stack, port: int) -> float:
    """The worker's `relay_ledger_pending_keys` (0 when it does not answer yet)."""
    try:
        async with stack.client.session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("relay_ledger_pending_keys "):
            return float(line.split()[1])
    return 0.0


def rates_before(entries: Sequence[dict[str, Any]], marks: Sequence[float]) -> list[float]:
    """Acceptances per second in the RATE_WINDOW_S before each mark."""
    times = sorted(received_s(e) for e in entries)
    return [
        (bisect.bisect_left(times, m) - bisect.bisect_left(times, m - RATE_WINDOW_S))
        / RATE_WINDOW_S
        for m in marks
    ]


async def run_chaos(run: Run, out: Outcome, kind: Kind, kill9: int, events: int) -> None:
    config = (
        default_config()
        if kind == "web"
        else write_app_config(run.work_dir / "apps.toml", MOBILE_ACCOUNTS)
    )
    targets = config.pixels if kind == "web" else config.apps
    accounts = len({t.account_id for t in targets})
    run.relay_env = {**relay_settings(kind), **run.relay_env}
    out.settings = run.settings_note()
    rng = random.Random(kill9 * 7919 + events)
    shares = sorted(rng.uniform(FIRST_KILL_SHARE, LAST_KILL_SHARE) for _ in range(kill9))
    batch = (
        web_events(events, config.pixels, seed=5)
        if kind == "web"
        else mobile_events(events, config.path, seed=5)
    )
    out.result.update(kind=kind, events=events, kills_planned=kill9, accounts=accounts)
    marks: list[float] = []
    at_kill: list[int] = []
    pending: list[float] = []
    gaps: list[float] = []
    async with open_stack(run, config.path) as stack:
        topic, inputs = input_spec(PREFIX, kind)
        await fill(stack.bootstrap, topic, batch)
        port = free_port()
        relay = await stack.start_relay(PREFIX, inputs, {"RELAY_HTTP_PORT": str(port)})
        for number, share in enumerate(shares, 1):
            target = int(share * events)
            await wait_progress(
                stack, kind, target, f"{target:,} delivered before kill {number}", PREFIX
            )
            read_at = time.monotonic()
            pending.append(await pending_ledger_keys(stack, port))
            await relay.kill()
            gaps.append(time.monotonic() - read_at)
            marks.append(time.time())
            at_kill.append(progress(await stack.client.stats(), kind))
            run.say(f"kill -9 #{number} at {at_kill[-1]:,} delivered; starting again")
            port = free_port()
            relay = await stack.start_relay(PREFIX, inputs, {"RELAY_HTTP_PORT": str(port)})
        settled = await await_settled(stack, PREFIX, kind, [e.identity for e in batch])
        await relay.stop()
    env = stack.relay_env(PREFIX, inputs)
    bound = in_flight_bound(kind, env, accounts)
    rates = rates_before(settled.entries, marks)
    ledger = ledger_terms(pending, rates, gaps)
    bounds = [bound + term for term in ledger]
    per_kill = duplicates_between(settled.entries, kind, marks)
    resume = [first_after(settled.entries, m) for m in marks]
    acc = settled.accounting
    out.result.update(
        accounting=acc.to_json(),
        complete=settled.complete,
        kills=len(marks),
        delivered_at_kill=at_kill,
        duplicates_per_kill=per_kill,
        duplicates_per_kill_mean=acc.duplicates / len(marks) if marks else 0,
        resume_after_kill_s=[None if r is None else round(r, 2) for r in resume],
        in_flight_bound=bound,
        rate_before_kill_per_s=[round(r, 1) for r in rates],
        ledger_pending_keys_at_kill=[int(p) for p in pending],
        ledger_term_per_kill=ledger,
        bound_per_kill=bounds,
        sandbox_duplicates_stat=settled.stats.get("duplicates"),
    )
    over = sum(max(d - b, 0) for d, b in zip(per_kill, bounds, strict=True))
    out.targets += [
        Target("lost", acc.lost, "==", 0),
        Target("duplicates beyond each kill's bound", over, "==", 0),
    ]
