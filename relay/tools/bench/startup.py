"""`relay bench startup`: seconds from starting `relay run` (its own process, default
settings but the budget, both stages) to the sandbox accepting its first conversion, on a
first start (new groups, the relay's topics created) and on a restart (SIGTERM, then a new
process on the same groups and topics); then the same with static membership
(`RELAY_KAFKA_GROUP_INSTANCE_ID`), reported apart.

Each start finds 20 web events waiting. The relay's own account of where the time went
(its start-up log line: imports, settings, topics, joins, first records, first 2xx, in
seconds after the process started) is kept for every start. The relay's package is
byte-compiled first, as an installed relay is (pip compiles on install).
Target: first delivery <= 2 s after the start, first start and restart (median of rounds).
"""

from __future__ import annotations

import asyncio
import compileall
import re
import statistics
import time
from pathlib import Path
from typing import Any, Final

import relay
from relay.tools.bench.configs import default_config
from relay.tools.bench.context import Run
from relay.tools.bench.e2e import input_spec
from relay.tools.bench.events import web_events
from relay.tools.bench.kafka_io import fill
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.procs import Child
from relay.tools.bench.results import Target
from relay.tools.bench.stack import Stack, accepted, open_stack
from relay.tools.bench.throughput import relay_settings

TARGET_S: Final = 2.0
WAITING_EVENTS: Final = 20
FIRST_DELIVERY_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.02
TIMELINE_WAIT_S: Final = 5.0
STEP = re.compile(r"([a-z][a-z0-9 ]*?) (\d+\.\d+)")
CASES: Final = ("first start", "restart", "static first start", "static restart")


def parse_timeline(log_text: str) -> dict[str, float] | None:
    """The steps of the relay's `first delivery ...: step 0.41, ...` line, if logged."""
    for line in log_text.splitlines():
        _, found, steps = line.partition("after the process started: ")
        if found:
            return {name: float(at) for name, at in STEP.findall(steps)}
    return None


async def _timeline(child: Child) -> dict[str, float] | None:
    deadline = time.monotonic() + TIMELINE_WAIT_S
    while time.monotonic() < deadline:
        if child.log_path is not None and child.log_path.exists():
            found = parse_timeline(child.log_path.read_text(errors="replace"))
            if found is not None:
                return found
        await asyncio.sleep(0.05)
    return None


async def _one_start(
    stack: Stack, prefix: str, seed: int, extra: dict[str, str]
) -> tuple[float, dict[str, float] | None]:
    """Events waiting, then `relay run`: (seconds to the first acceptance, its timeline)."""
    topic, inputs = input_spec(prefix, "web")
    await fill(
        stack.bootstrap, topic, web_events(WAITING_EVENTS, default_config().pixels, seed=seed)
    )
    base = accepted(await stack.client.stats(), "web")
    started = time.monotonic()
    child = await stack.start_relay(prefix, inputs, extra)
    took: float | None = None
    try:
        while took is None:
            if accepted(await stack.client.stats(), "web") > base:
                took = time.monotonic() - started
                break
            stack.check_alive(child)
            if time.monotonic() - started > FIRST_DELIVERY_TIMEOUT_S:
                raise TimeoutError(
                    f"{prefix}: no delivery {FIRST_DELIVERY_TIMEOUT_S:.0f}s after start"
                )
            await asyncio.sleep(POLL_S)
        timeline = await _timeline(child)
    finally:
        await child.stop()
    return took, timeline


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "runs_s": [round(v, 3) for v in values],
        "median_s": round(statistics.median(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }


async def run_startup(run: Run, out: Outcome, rounds: int) -> None:
    package = Path(relay.__file__).parent
    out.result["bytecode_compiled"] = compileall.compile_dir(package, quiet=1)
    settings = relay_settings("web")
    out.settings = run.settings_note(settings)
    measured: dict[str, list[float]] = {case: [] for case in CASES}
    timelines: dict[str, list[dict[str, float] | None]] = {case: [] for case in CASES}
    saved = run.relay_env
    run.relay_env = {**settings, **saved}
    try:
        async with open_stack(run, default_config().path) as stack:
            seed = 0
            for n in range(rounds):
                for static in (False, True):
                    prefix = f"startup{n}{'s' if static else ''}"
                    extra = {"RELAY_KAFKA_GROUP_INSTANCE_ID": f"bench-{prefix}"} if static else {}
                    for case in ("first start", "restart"):
                        name = f"static {case}" if static else case
                        seed += 1  # new events each start (the same ones would be replays)
                        took, timeline = await _one_start(stack, prefix, seed, extra)
                        measured[name].append(took)
                        timelines[name].append(timeline)
                        run.say(f"round {n + 1}/{rounds} {name}: first delivery after {took:.2f}s")
                        run.check(f"after round {n + 1}")
    finally:
        run.relay_env = saved
        for case in CASES:
            if measured[case]:
                out.result[case.replace(" ", "_")] = {
                    **_summary(measured[case]),
                    "timelines": timelines[case],
                }
    for case in ("first start", "restart"):
        key = case.replace(" ", "_")
        median = out.result.get(key, {}).get("median_s")
        out.targets.append(Target(f"{case}: first delivery after", median, "<=", TARGET_S, "s"))
