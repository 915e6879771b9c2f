"""`relay bench outage`: X answers only 503 for `outage_s` in the middle of a paced web run,
then is healthy again. Targets: 0 lost, 0 dead-lettered (an outage of X is no fault of the
events); the time from X's recovery to the next accepted conversion is reported."""

from __future__ import annotations

import time
from typing import Final

from relay.tools.bench.context import Run
from relay.tools.bench.disturb import (
    disturbed_web_run,
    feed_seconds,
    first_after,
    hold,
    wait_progress,
)
from relay.tools.bench.e2e import Relays
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import Stack, responses

PREFIX: Final = "outage"


async def run_outage(run: Run, out: Outcome, events: int, outage_s: float) -> None:
    out.result.update(events=events, outage_s=outage_s, feed_rate_per_s=events / feed_seconds(run))
    healthy_at = 0.0

    async def outage(stack: Stack, relay: Relays) -> None:
        nonlocal healthy_at
        await wait_progress(stack, "web", events // 3, "a third delivered", PREFIX)
        run.say(f"X answers 503 to everything for {outage_s:g}s")
        await stack.client.set_faults({"error_rates": {"503": 1.0}})
        await hold(stack, outage_s)
        await stack.client.clear_faults()
        healthy_at = time.time()
        run.say("X is healthy again")

    settled = (await disturbed_web_run(run, out, PREFIX, events, outage, seed=6)).settled
    acc = settled.accounting
    resume = first_after(settled.entries, healthy_at)
    out.result.update(
        accounting=acc.to_json(),
        complete=settled.complete,
        answered_503=responses(settled.stats, 503),
        resume_after_outage_s=None if resume is None else round(resume, 2),
    )
    out.targets += [
        Target("lost", acc.lost, "==", 0),
        Target("dead-lettered", acc.dead_lettered, "==", 0),
        Target("resumed by itself", 1 if resume is not None else 0, "==", 1),
    ]
