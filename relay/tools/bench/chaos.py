"""`relay bench chaos --kill9 N [--kind web|mobile]`: a backlog over several accounts (web:
the token's four accounts; mobile: eight accounts' apps, as an MMP posts them: one account
alone is capped at RELAY_MAX_IN_FLIGHT_PER_ACCOUNT requests in flight, which made a 100,000
conversion feed of the demo apps' one account take a quarter of an hour), `relay run` killed
with SIGKILL at N random moments (drawn as shares of the run's progress) and started again
each time.

Then every produced event is looked up: lost = neither in the sandbox's journal nor in the
dead-letter topic (target 0); duplicates = journal entries beyond one per event (web: the
conversions X saw again and deduplicated by conversion_id; app: each one a double count at
X), bucketed by the kill they follow. The bound compared with: what the relay may have in
flight at a kill with its settings (min(RELAY_MAX_IN_FLIGHT_REQUESTS, accounts x
RELAY_MAX_IN_FLIGHT_PER_ACCOUNT) requests, x batch size for web), ledger entries not yet
acknowledged left out.
"""

from __future__ import annotations

import random
import time
from typing import Final

from relay.config import load_settings
from relay.tools.bench.accounting import duplicates_between
from relay.tools.bench.configs import default_config, write_app_config
from relay.tools.bench.context import Run
from relay.tools.bench.disturb import await_settled, first_after, progress, wait_progress
from relay.tools.bench.e2e import input_spec
from relay.tools.bench.events import Kind, mobile_events, web_events
from relay.tools.bench.kafka_io import fill
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import open_stack
from relay.tools.bench.throughput import MOBILE_ACCOUNTS, relay_settings

PREFIX: Final = "chaos"
FIRST_KILL_SHARE: Final = 0.05
LAST_KILL_SHARE: Final = 0.9


def in_flight_bound(kind: Kind, env: dict[str, str], accounts: int) -> int:
    settings = load_settings({k: v for k, v in env.items() if k.startswith("RELAY_")})
    requests = min(settings.max_in_flight_requests, accounts * settings.max_in_flight_per_account)
    return requests * settings.web_batch_size if kind == "web" else requests


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
    async with open_stack(run, config.path) as stack:
        topic, inputs = input_spec(PREFIX, kind)
        await fill(stack.bootstrap, topic, batch)
        relay = await stack.start_relay(PREFIX, inputs)
        marks: list[float] = []
        at_kill: list[int] = []
        for number, share in enumerate(shares, 1):
            target = int(share * events)
            await wait_progress(
                stack, kind, target, f"{target:,} delivered before kill {number}", PREFIX
            )
            await relay.kill()
            marks.append(time.time())
            at_kill.append(progress(await stack.client.stats(), kind))
            run.say(f"kill -9 #{number} at {at_kill[-1]:,} delivered; starting again")
            relay = await stack.start_relay(PREFIX, inputs)
        settled = await await_settled(stack, PREFIX, kind, [e.identity for e in batch])
        await relay.stop()
    bound = in_flight_bound(kind, {**stack.relay_env(PREFIX, inputs)}, accounts)
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
        sandbox_duplicates_stat=settled.stats.get("duplicates"),
    )
    out.targets += [
        Target("lost", acc.lost, "==", 0),
        Target("max duplicates per kill", max(per_kill, default=0), "<=", bound),
    ]
