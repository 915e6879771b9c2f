"""`relay bench broker-pause`: the broker stopped with SIGSTOP for `pause_s` in the middle of
a paced web run, then continued. Targets: 0 lost, and the same `relay run` process delivers
everything (no restart); the time from SIGCONT to the next accepted conversion is reported."""

from __future__ import annotations

import signal
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
from relay.tools.bench.stack import Stack

PREFIX: Final = "pause"


async def run_broker_pause(run: Run, out: Outcome, events: int, pause_s: float) -> None:
    out.result.update(events=events, pause_s=pause_s, feed_rate_per_s=events / feed_seconds(run))
    continued_at = 0.0

    async def pause(stack: Stack, relay: Relays) -> None:
        nonlocal continued_at
        await wait_progress(stack, "web", events // 3, "a third delivered", PREFIX)
        run.say(f"SIGSTOP to the broker for {pause_s:g}s")
        stack.broker.signal(signal.SIGSTOP)
        try:
            await hold(stack, pause_s, *relay.children, stack.sandbox)
        finally:
            stack.broker.signal(signal.SIGCONT)
        continued_at = time.time()
        run.say("SIGCONT: the broker runs again")

    disturbed = await disturbed_web_run(run, out, PREFIX, events, pause, seed=7)
    settled = disturbed.settled
    acc = settled.accounting
    resume = first_after(settled.entries, continued_at)
    out.result.update(
        accounting=acc.to_json(),
        complete=settled.complete,
        relay_survived=disturbed.relay_survived,
        resume_after_pause_s=None if resume is None else round(resume, 2),
    )
    out.targets += [
        Target("lost", acc.lost, "==", 0),
        Target("relay restarts", 0 if disturbed.relay_survived else 1, "==", 0),
    ]
