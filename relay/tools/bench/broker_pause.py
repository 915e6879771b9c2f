"""`relay bench broker-pause`: the broker stopped with SIGSTOP for `pause_s` in the middle of
a paced web run, then continued. Targets: 0 lost, and the same `relay run` process delivers
everything (no restart); the time from SIGCONT to the next accepted conversion is reported."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Final

from relay.tools.bench.configs import default_config
from relay.tools.bench.context import Run
from relay.tools.bench.disturb import WARMUP, await_settled, first_after, paced, wait_progress
from relay.tools.bench.e2e import input_spec, start_and_warm
from relay.tools.bench.events import web_events
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import open_stack
from relay.tools.bench.throughput import relay_settings

PREFIX: Final = "pause"
FEED_S: Final = 60.0


async def run_broker_pause(run: Run, out: Outcome, events: int, pause_s: float) -> None:
    config = default_config()
    run.relay_env = {**relay_settings("web"), **run.relay_env}
    out.settings = run.settings_note()
    feed_s = FEED_S if not run.quick else 10.0
    batch = web_events(events, config.pixels, seed=7)
    out.result.update(events=events, pause_s=pause_s, feed_rate_per_s=events / feed_s)
    async with open_stack(run, config.path) as stack:
        topic, _ = input_spec(PREFIX, "web")
        warmup = web_events(WARMUP, config.pixels, seed=99)
        relay, _ = await start_and_warm(stack, PREFIX, "web", warmup)
        async with paced(stack, topic, batch, events / feed_s) as feeding:
            await wait_progress(stack, "web", events // 3, "a third delivered", PREFIX)
            run.say(f"SIGSTOP to the broker for {pause_s:g}s")
            stack.broker.signal(signal.SIGSTOP)
            try:
                until = time.monotonic() + pause_s
                while time.monotonic() < until:
                    stack.check_alive(*relay.children, stack.sandbox)
                    await asyncio.sleep(0.5)
            finally:
                stack.broker.signal(signal.SIGCONT)
            continued_at = time.time()
            run.say("SIGCONT: the broker runs again")
            await feeding
        settled = await await_settled(stack, PREFIX, "web", [e.identity for e in [*warmup, *batch]])
        survived = relay.running
        await relay.stop()
    acc = settled.accounting
    resume = first_after(settled.entries, continued_at)
    out.result.update(
        accounting=acc.to_json(),
        complete=settled.complete,
        relay_survived=survived,
        resume_after_pause_s=None if resume is None else round(resume, 2),
    )
    out.targets += [
        Target("lost", acc.lost, "==", 0),
        Target("relay restarts", 0 if survived else 1, "==", 0),
    ]
