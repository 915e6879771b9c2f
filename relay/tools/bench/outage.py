"""`relay bench outage`: X answers only 503 for `outage_s` in the middle of a paced web run,
then is healthy again. Targets: 0 lost, 0 dead-lettered (an outage of X is no fault of the
events); the time from X's recovery to the next accepted conversion is reported."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from relay.tools.bench.configs import default_config
from relay.tools.bench.context import Run
from relay.tools.bench.disturb import WARMUP, await_settled, first_after, paced, wait_progress
from relay.tools.bench.e2e import input_spec, start_and_warm
from relay.tools.bench.events import web_events
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import open_stack, responses
from relay.tools.bench.throughput import relay_settings

PREFIX: Final = "outage"
FEED_S: Final = 60.0  # the feed spans this long on a full run; the outage starts a third in


async def run_outage(run: Run, out: Outcome, events: int, outage_s: float) -> None:
    config = default_config()
    run.relay_env = {**relay_settings("web"), **run.relay_env}
    out.settings = run.settings_note()
    feed_s = FEED_S if not run.quick else 10.0
    batch = web_events(events, config.pixels, seed=6)
    out.result.update(events=events, outage_s=outage_s, feed_rate_per_s=events / feed_s)
    async with open_stack(run, config.path) as stack:
        topic, _ = input_spec(PREFIX, "web")
        warmup = web_events(WARMUP, config.pixels, seed=99)
        relay, _ = await start_and_warm(stack, PREFIX, "web", warmup)
        async with paced(stack, topic, batch, events / feed_s) as feeding:
            await wait_progress(stack, "web", events // 3, "a third delivered", PREFIX)
            run.say(f"X answers 503 to everything for {outage_s:g}s")
            await stack.client.set_faults({"error_rates": {"503": 1.0}})
            outage_until = time.monotonic() + outage_s
            while time.monotonic() < outage_until:
                stack.check_alive()
                await asyncio.sleep(0.5)
            await stack.client.clear_faults()
            healthy_at = time.time()
            run.say("X is healthy again")
            await feeding
        settled = await await_settled(stack, PREFIX, "web", [e.identity for e in [*warmup, *batch]])
        await relay.stop()
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
