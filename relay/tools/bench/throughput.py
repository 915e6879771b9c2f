"""`relay bench throughput [--kind web|mobile]`: end to end against its floor, same run.

Web: N events over the token's four accounts (email + phone, 40% of phones outside `+1`, IP,
UA) through a `relay run` process, against the pipelined Kafka floor (floor.py), `rounds`
times, floor and end to end alternating. Targets, on the medians of the rounds: >= 0.4 of
the floor and <= 30 us of relay CPU per event.

Mobile: N canonical `mobile` conversions through a `relay run` process to the sandbox with
its 100 ms latency fault on, against a bare aiohttp loop with 128 in flight (floor.py) on the
same sandbox. Target: >= 0.6 of the floor; relay CPU per conversion reported.

Beside the relay's CPU, the run records that of its neighbours over the same span (sandbox,
broker, bench) and the ratio at which they and the relay would keep every core busy: on a
small machine that, not the relay, can cap the ratio.
"""

from __future__ import annotations

import statistics
from typing import Any, Final

from relay import hotpath
from relay.hotpath import PURE_PYTHON_ENV
from relay.tools.bench.configs import BenchConfig, default_config, write_app_config
from relay.tools.bench.context import BENCH_ACCOUNT_LIMIT, Run
from relay.tools.bench.e2e import EndToEnd, measure
from relay.tools.bench.events import BENCH_HMAC_KEY, Kind, mobile_events, web_events
from relay.tools.bench.floor import Floor, mobile_floor, web_floor
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
    run: Run,
    out: Outcome,
    kind: Kind,
    events: int,
    rounds: int = 1,
    split_stages: bool = False,
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
    rounds = max(rounds, 1) if kind == "web" else 1  # mobile: minutes per round, and steady
    out.result.update(
        kind=kind,
        events=count,
        accounts=len({p.account_id for p in (config.pixels if kind == "web" else config.apps)}),
        relay_processes=2 if split_stages else 1,
    )
    measured: list[tuple[Floor, EndToEnd]] = []
    # Web: each round also runs the relay from its Python sources, when it runs compiled.
    compiled = out.result["compiled"] = hotpath.runs_compiled(run.relay_env)
    side_by_side = kind == "web" and compiled
    pure: list[tuple[Floor, EndToEnd]] = []
    for round_ in range(rounds):
        # Side by side, each build on a stack of its own after a floor of its own, which goes
        # first alternating: a broker that holds earlier records measures slower.
        order = [False, True] if side_by_side else [False]
        for from_source in order if round_ % 2 == 0 else order[::-1]:
            floor, e2e = await _round(
                run, out, kind, config, count, round_, split_stages, from_source
            )
            (pure if from_source else measured).append((floor, e2e))
    _report(out, kind, measured)
    if side_by_side:
        _report_pure(out, pure)


async def _round(
    run: Run,
    out: Outcome,
    kind: Kind,
    config: BenchConfig,
    count: int,
    round_: int,
    split_stages: bool,
    from_source: bool,
) -> tuple[Floor, EndToEnd]:
    """One round on a broker and a sandbox of its own: one that holds the earlier rounds'
    records measured slower with each (floor 99,000 -> 49,000/s over three rounds).
    `from_source`: the relay runs its Python sources (RELAY_PURE_PYTHON=1)."""
    build = " (hot path from source)" if from_source else ""
    async with open_stack(run, config.path) as stack:
        if kind == "web":
            batch = web_events(count, config.pixels, seed=1 + 10 * round_)
            warmup = web_events(min(WARMUP, count), config.pixels, seed=2 + 10 * round_)
            run.say(f"round {round_ + 1}{build}: the floor on {count:,} records")
            floor = await web_floor(run, stack.bootstrap, batch)
        else:
            batch = mobile_events(count, config.path, seed=1)
            warmup = mobile_events(min(WARMUP, count), config.path, seed=2)
            await stack.client.set_faults({"latency_ms": MOBILE_LATENCY_MS})
            out.result["sandbox_latency_ms"] = MOBILE_LATENCY_MS
            run.say(f"measuring the floor: {count:,} conversion_event calls")
            floor = await mobile_floor(run, stack.sandbox_url, batch)
        run.say(f"floor: {floor.per_s or 0:,.0f}/s; measuring end to end{build}")
        extra = {PURE_PYTHON_ENV: "1"} if from_source else None
        e2e, _ = await measure(
            stack, "bench", kind, batch, warmup, extra, split_stages=split_stages
        )
    run.say(f"end to end{build}: {_rate(e2e)}, {_cpu(e2e)} of relay CPU per event")
    return floor, e2e


def _report_pure(out: Outcome, measured: list[tuple[Floor, EndToEnd]]) -> None:
    cpus = [c for c in (e.cpu_us_per_event for _, e in measured) if c is not None]
    ratios = [r for r in (_ratio(*m) for m in measured) if r is not None]
    cpu = statistics.median_low(cpus) if cpus else None
    compiled = out.result.get("relay_cpu_us_per_event_median") or out.result["end_to_end"].get(
        "cpu_us_per_event"
    )
    out.result["pure_python"] = {
        "rounds": [_round_in_brief(f, e) for f, e in measured],
        "cpu_us_per_event_median": cpu,
        "ratio_median": statistics.median_low(ratios) if ratios else None,
        "compiled_cpu_saving": round(1 - compiled / cpu, 3) if cpu and compiled else None,
    }


def _rate(e2e: EndToEnd) -> str:
    return f"{e2e.steady_per_s:,.0f}/s" if e2e.steady_per_s else "no rate"


def _cpu(e2e: EndToEnd) -> str:
    return f"{e2e.cpu_us_per_event:.1f} us" if e2e.cpu_us_per_event is not None else "?"


def _round_in_brief(floor: Floor, e2e: EndToEnd) -> dict[str, Any]:
    measured = e2e.to_json()
    return {
        "floor_per_s": floor.to_json()["per_s"],
        "per_s": measured["per_s"],
        "ratio": _ratio(floor, e2e),
        "cpu_us_per_event": e2e.cpu_us_per_event,
        "system_cpu_us_per_event": measured["system_cpu_us_per_event"],
        "page_faults_per_event": measured["page_faults_per_event"],
    }


def _ratio(floor: Floor, e2e: EndToEnd) -> float | None:
    return e2e.steady_per_s / floor.per_s if e2e.steady_per_s and floor.per_s else None


def _report(out: Outcome, kind: Kind, measured: list[tuple[Floor, EndToEnd]]) -> None:
    """The median round in full (by its ratio), every round in brief, and the targets on
    the medians: one round on a shared machine moves by a third either way."""
    by_ratio = sorted(measured, key=lambda m: _ratio(*m) or 0.0)
    floor, e2e = by_ratio[(len(by_ratio) - 1) // 2]  # the lower median, a round measured
    out.result["floor"] = floor.to_json()
    out.result["end_to_end"] = e2e.to_json()
    ratios = [r for r in (_ratio(*m) for m in measured) if r is not None]
    cpus = [c for c in (m[1].cpu_us_per_event for m in measured) if c is not None]
    ratio = statistics.median_low(ratios) if ratios else None
    cpu = statistics.median_low(cpus) if cpus else None
    out.result["ratio"] = ratio
    if len(measured) > 1:
        out.result["rounds"] = [_round_in_brief(f, e) for f, e in measured]
        out.result["relay_cpu_us_per_event_median"] = cpu
    # The ratio at which this machine's cores are all busy, at the CPU per event the relay and
    # its neighbours (the sandbox standing in for X, the broker, the bench) were measured at.
    ceiling = e2e.machine_ceiling_per_s()
    out.result["machine_ceiling_ratio"] = ceiling / floor.per_s if ceiling and floor.per_s else None
    if kind == "web":
        out.targets += [
            Target("ratio to floor", ratio, ">=", WEB_RATIO_TARGET),
            Target("relay CPU per event", cpu, "<=", WEB_CPU_US_TARGET, "us"),
        ]
    else:
        out.targets.append(Target("ratio to floor", ratio, ">=", MOBILE_RATIO_TARGET))
