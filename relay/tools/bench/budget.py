"""`relay bench budget`: `workers` relay processes share `accounts` accounts, each with a
backlog deeper than the run can deliver, under a compressed budget (`limit` events per
`window_s`, the same in the relay and the sandbox: RELAY_ACCOUNT_LIMIT /
RELAY_ACCOUNT_WINDOW_S), for `windows` windows.

The sandbox's windows are fixed and aligned to the epoch, so each acceptance in its journal
falls in one window. The first window (partial: the workers join during it) and the window
the run stops in are left out of the checks. Targets: in every other window each account's
accepted events >= 98% of its budget, and zero 429 answers after the first window (counted by
polling the sandbox's stats).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from typing import Final

from relay.tools.bench.accounting import received_s
from relay.tools.bench.configs import account_id, write_config
from relay.tools.bench.context import Run
from relay.tools.bench.disturb import progress
from relay.tools.bench.e2e import input_spec
from relay.tools.bench.events import web_events_for
from relay.tools.bench.kafka_io import fill
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import open_stack, responses

PREFIX: Final = "budget"
USE_TARGET: Final = 0.98
SPARE_WINDOWS: Final = 2  # backlog beyond the run: no account ever runs dry


async def run_budget(
    run: Run, out: Outcome, workers: int, accounts: int, limit: int, window_s: float, windows: int
) -> None:
    budget_env = {"RELAY_ACCOUNT_LIMIT": str(limit), "RELAY_ACCOUNT_WINDOW_S": f"{window_s:g}"}
    run.relay_env = {**budget_env, **run.relay_env}
    out.settings = run.settings_note() + " (the sandbox has the same budget)"
    config = write_config(run.work_dir / "budget.toml", [account_id(i) for i in range(accounts)])
    per_account = limit * (windows + SPARE_WINDOWS)
    backlog = web_events_for(config.pixels, per_account, seed=9)
    out.result.update(
        workers=workers, accounts=accounts, limit=limit, window_s=window_s, windows=windows
    )
    too_many: list[tuple[float, int]] = []  # (epoch s, 429 answers so far)
    async with open_stack(run, config.path) as stack:
        topic, inputs = input_spec(PREFIX, "web")
        run.say(f"backlog: {len(backlog):,} events, {per_account:,} per account")
        await fill(stack.bootstrap, topic, backlog)
        for _ in range(workers):
            await stack.start_relay(PREFIX, inputs)

        async def started() -> bool:
            return progress(await stack.client.stats(), "web") > 0

        await run.wait_for(started, "the first delivery", alive=stack.check_alive)
        first_window = math.floor(time.time() / window_s)
        stop_window = first_window + windows + 1
        run.say(f"delivering; {windows} full windows of {window_s:g}s follow")
        while time.time() < stop_window * window_s:
            stack.check_alive()
            stats = await stack.client.stats()
            too_many.append((time.time(), responses(stats, 429)))
            await asyncio.sleep(0.5)
        for relay in stack.relays:
            await relay.stop()
        entries = await stack.client.journal("web")
    per_window: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        per_window[entry["account_id"]][math.floor(received_s(entry) / window_s)] += 1
    checked = list(range(first_window + 1, stop_window))
    worst = min(
        (per_window[p.account_id][w] / limit for p in config.pixels for w in checked), default=None
    )
    at_first_end = max((n for t, n in too_many if t < (first_window + 1) * window_s), default=0)
    late_429 = (too_many[-1][1] if too_many else 0) - at_first_end
    out.result.update(
        first_window=first_window,
        checked_windows=[w - first_window for w in checked],
        accepted_per_window={
            p.account_id: [per_window[p.account_id][w] for w in range(first_window, stop_window)]
            for p in config.pixels
        },
        worst_share_of_budget=worst,
        answered_429_total=too_many[-1][1] if too_many else 0,
        answered_429_after_first_window=late_429,
    )
    out.targets += [
        Target("worst account-window share of budget", worst, ">=", USE_TARGET),
        Target("429 after the first window", late_429, "==", 0),
    ]
