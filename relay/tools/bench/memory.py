"""`relay bench memory`: a backlog of `events` web events over `accounts` accounts (one pixel
each, in a mapping file both the relay and the sandbox read, the token allowed on all of
them) through one `relay run`. Peak RSS of the worker (VmHWM of its process) against 300 MB;
nothing lost: distinct conversions X accepted + dead letters = events. Counted on the
sandbox's counters (its web dedup by conversion_id), not the journal: a million entries
would cost more to read than to deliver.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from relay.tools.bench.configs import account_id, write_config
from relay.tools.bench.context import Run
from relay.tools.bench.disturb import progress
from relay.tools.bench.e2e import input_spec
from relay.tools.bench.events import web_events
from relay.tools.bench.kafka_io import fill, read_topic
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import open_stack
from relay.tools.bench.throughput import relay_settings

PREFIX: Final = "memory"
RSS_TARGET_MB: Final = 300.0
SAMPLE_S: Final = 1.0
QUIET_S: Final = 120.0


async def run_memory(run: Run, out: Outcome, events: int, accounts: int) -> None:
    run.relay_env = {**relay_settings("web"), **run.relay_env}
    out.settings = run.settings_note()
    config = write_config(run.work_dir / "memory.toml", [account_id(i) for i in range(accounts)])
    out.result.update(events=events, accounts=accounts)
    run.say(f"generating {events:,} events over {accounts:,} accounts")
    backlog = web_events(events, config.pixels, seed=10)
    async with open_stack(run, config.path) as stack:
        topic, inputs = input_spec(PREFIX, "web")
        run.say("writing the backlog")
        await fill(stack.bootstrap, topic, backlog)
        del backlog
        relay = await stack.start_relay(PREFIX, inputs)
        peak = 0
        last, last_change, last_say = -1, time.monotonic(), 0.0
        while True:
            stack.check_alive()
            usage = relay.usage()
            if usage is not None:
                peak = max(peak, usage.peak_rss_bytes)
            done = progress(await stack.client.stats(), "web")
            if done != last:
                last, last_change = done, time.monotonic()
            if time.monotonic() - last_say > 10:
                last_say = time.monotonic()
                run.say(f"{done:,}/{events:,} delivered, peak RSS {peak / 2**20:,.0f} MB")
            if done >= events or time.monotonic() - last_change > QUIET_S:
                break
            run.check("delivering the backlog")
            await asyncio.sleep(SAMPLE_S)
        await relay.stop()
        dead = len(await read_topic(stack.bootstrap, f"{PREFIX}.dlq"))
        stats = await stack.client.stats()
    delivered = progress(stats, "web")
    lost = max(events - delivered - dead, 0)
    out.result.update(
        delivered=delivered,
        dead_lettered=dead,
        lost=lost,
        duplicates=stats["duplicates"],
        peak_rss_mb=round(peak / 2**20, 1),
    )
    out.targets += [
        Target("peak RSS of the worker", peak / 2**20 if peak else None, "<=", RSS_TARGET_MB, "MB"),
        Target("lost", lost, "==", 0),
    ]
