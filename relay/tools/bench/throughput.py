"""`relay bench throughput [--kind web|mobile]`: end to end against its floor, same run.

Web: N events over the token's four accounts (email + phone, 40% of phones outside `+1`, IP,
UA) through a `relay run` process, against the pipelined Kafka floor (floor.py). Targets:
>= 0.4 of the floor and <= 30 us of relay CPU per event.

Mobile: N canonical `mobile` conversions through a `relay run` process to the sandbox with
its 100 ms latency fault on, against a bare aiohttp loop with 128 in flight (floor.py) on the
same sandbox. Target: >= 0.6 of the floor; relay CPU per conversion reported.

Beside the relay's CPU, the run records that of its neighbours over the same span (sandbox,
broker, bench) and the ratio at which they and the relay would keep every core busy: on a
small machine that, not the relay, can cap the ratio.
"""

from __future__ import annotations

from typing import Final

from relay.tools.bench.configs import default_config, write_app_config
from relay.tools.bench.context import BENCH_ACCOUNT_LIMIT, Run
from relay.tools.bench.e2e import measure
from relay.tools.bench.events import BENCH_HMAC_KEY, Kind, mobile_events, web_events
from relay.tools.bench.floor import mobile_floor, web_floor
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import Target
from relay.tools.bench.stack import open_stack

WEB_RATIO_TARGET: Final = 0.4
WEB_CPU_US_TARGET: Final = 30.0
MOBILE_RATIO_TARGET: Final = 0.6
MOBILE_LATENCY_MS: Final = 100.0
MOBILE_ACCOUNTS: Final = 8
WARMUP: Final = 1_000


def relay_settings(kind: Kind) -> dict[str, str]:
    """What a user sets: the budget out of the way (the bench measures the relay, not X's
    limit), and for app inputs the partner's HMAC key."""
    env = {"RELAY_ACCOUNT_LIMIT": str(BENCH_ACCOUNT_LIMIT)}
    if kind == "mobile":
        env["RELAY_DEVICE_ID_HMAC_KEY"] = BENCH_HMAC_KEY
    return env


async def run_throughput(
    run: Run, out: Outcome, kind: Kind, events: int, split_stages: bool = False
) -> None:
    count = events
    # App conversions over several accounts, as an MMP posts them: one account alone is
    # capped at RELAY_MAX_IN_FLIGHT_PER_ACCOUNT requests in flight.
    config = (
        default_config()
        if kind == "web"
        else write_app_config(run.work_dir / "apps.toml", MOBILE_ACCOUNTS)
    )
    run.relay_env = {**relay_settings(kind), **run.relay_env}
    out.settings = run.settings_note()
    out.result.update(
        kind=kind,
        events=count,
        accounts=len({p.account_id for p in (config.pixels if kind == "web" else config.apps)}),
        relay_processes=2 if split_stages else 1,
    )
    async with open_stack(run, config.path) as stack:
        if kind == "web":
            batch = web_events(count, config.pixels, seed=1)
            warmup = web_events(min(WARMUP, count), config.pixels, seed=2)
            run.say(f"measuring the floor on {count:,} records")
            floor = await web_floor(run, stack.bootstrap, batch)
        else:
            batch = mobile_events(count, config.path, seed=1)
            warmup = mobile_events(min(WARMUP, count), config.path, seed=2)
            await stack.client.set_faults({"latency_ms": MOBILE_LATENCY_MS})
            out.result["sandbox_latency_ms"] = MOBILE_LATENCY_MS
            run.say(f"measuring the floor: {count:,} conversion_event calls")
            floor = await mobile_floor(run, stack.sandbox_url, batch)
        out.result["floor"] = floor.to_json()
        run.say(f"floor: {floor.records / floor.seconds:,.0f}/s; measuring end to end")
        e2e, _ = await measure(stack, "bench", kind, batch, warmup, split_stages=split_stages)
    out.result["end_to_end"] = e2e.to_json()
    floor_rate = floor.records / floor.seconds if floor.seconds else None
    ratio = e2e.steady_per_s / floor_rate if e2e.steady_per_s and floor_rate else None
    out.result["ratio"] = ratio
    # The ratio at which this machine's cores are all busy, at the CPU per event the relay and
    # its neighbours (the sandbox standing in for X, the broker, the bench) were measured at.
    ceiling = e2e.machine_ceiling_per_s()
    out.result["machine_ceiling_ratio"] = ceiling / floor_rate if ceiling and floor_rate else None
    if kind == "web":
        out.targets += [
            Target("ratio to floor", ratio, ">=", WEB_RATIO_TARGET),
            Target("relay CPU per event", e2e.cpu_us_per_event, "<=", WEB_CPU_US_TARGET, "us"),
        ]
    else:
        out.targets.append(Target("ratio to floor", ratio, ">=", MOBILE_RATIO_TARGET))
