"""`relay bench faults`: a paced web run through X misbehaving: 20% 5xx (500, 502, 503, 504
alike), 3% hung requests, 2% dropped connections, and a 429 storm of `storm_s` in the middle.
Targets: 0 lost, <= 1% dead-lettered, and no request for an account sent after the relay
learned the reset X's 429 announced, before that reset (resets.py: the relay's own count at
the wire). Beside it, as X saw it: the sandbox's early arrivals (`requests_before_reset`,
those on their way when X answered the 429 included), and those of them that arrived after
the relay had learned the reset (an upper bound of the target's count)."""

from __future__ import annotations

from typing import Any, Final

from relay.tools.bench.context import Run
from relay.tools.bench.disturb import disturbed_web_run, wait_progress
from relay.tools.bench.e2e import Relays
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.resets import (
    arrived_after_learning,
    read_lines,
    reset_learned_at,
    sent_before_reset,
)
from relay.tools.bench.results import Target
from relay.tools.bench.stack import Stack

PREFIX: Final = "faults"
DEAD_LETTER_SHARE: Final = 0.01
MIXED: Final[dict[str, Any]] = {
    "error_rates": {"500": 0.05, "502": 0.05, "503": 0.05, "504": 0.05},
    "hang_rate": 0.03,
    "drop_rate": 0.02,
    "seed": 13,
}


async def run_faults(run: Run, out: Outcome, events: int, storm_s: float) -> None:
    out.result.update(events=events, faults=MIXED, storm_s=storm_s)
    run.relay_env.setdefault("RELAY_LOG_FORMAT", "json")  # resets.py reads the relay's log
    early: dict[str, Any] = {}

    async def look_at_resets(stack: Stack) -> None:
        listed = (await stack.client.early_requests())["requests"]
        lines = read_lines(c.log_path for c in stack.relays)
        after = arrived_after_learning(listed, reset_learned_at(lines))
        early.update(sent=sent_before_reset(lines), arrived_after=len(after), examples=after[:5])

    async def mixed_then_storm(stack: Stack, relay: Relays) -> None:
        await wait_progress(stack, "web", events // 10, "a tenth delivered", PREFIX)
        run.say("mixed faults on")
        await stack.client.set_faults(MIXED)
        await wait_progress(stack, "web", events // 2, "half delivered", PREFIX)
        run.say(f"a 429 storm of {storm_s:g}s (mixed faults go on)")
        await stack.client.set_faults({**MIXED, "storm_s": storm_s})

    async def faults_off(stack: Stack) -> None:
        await wait_progress(stack, "web", int(events * 0.9), "nine tenths delivered", PREFIX)
        run.say("faults off")
        await stack.client.clear_faults()

    disturbed = await disturbed_web_run(
        run,
        out,
        PREFIX,
        events,
        mixed_then_storm,
        seed=8,
        after_feed=faults_off,
        inspect=look_at_resets,
    )
    settled = disturbed.settled
    acc = settled.accounting
    stats = settled.stats
    arrived_early = int(stats.get("requests_before_reset", -1))
    sent = early.get("sent")
    out.result.update(
        accounting=acc.to_json(),
        dead_letter_classes=settled.dead_letter_classes,
        complete=settled.complete,
        injected=stats.get("faults", {}),
        # Went after the relay had learned the reset, before it (the relay's count at the wire).
        requests_sent_before_reset=sent,
        # Arrived at X before the reset, those on their way at the 429 included (the sandbox).
        requests_before_reset=arrived_early,
        # Of those, arrived after the relay had learned the reset (>= the relay's count).
        requests_before_reset_arrived_after_learning=early.get("arrived_after"),
        early_examples=early.get("examples", []),
    )
    out.targets += [
        Target("lost", acc.lost, "==", 0),
        Target("dead-lettered share", acc.dead_lettered / events, "<=", DEAD_LETTER_SHARE),
        Target("requests sent before the announced reset", sent, "==", 0),
    ]
