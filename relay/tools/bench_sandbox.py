"""`relay bench sandbox`: how many answers the sandbox gives a bare aiohttp client.

The sandbox runs as `relay sandbox` in its own process; the client is a plain aiohttp loop
with a fixed number of requests in flight that sends requests signed before the clock
starts, so that the client spends its time on HTTP only. Scenarios:

- `conversion_event`, OAuth 1.0a (MACT takes nothing else), one conversion per request;
- web conversions in batches of 500, OAuth 1.0a;
- web conversions in batches of 500, `X-Pixel-Token` (no OAuth);
- web conversions in batches of 500 as the relay sends them (hashed email and phone, IP
  address and user agent, times and values of their own), OAuth.

`--baseline DIR` measures, in the same run and right after each scenario, the `relay
sandbox` of another source tree (e.g. a `git worktree` of an older commit), so that before
and after are compared on the same machine at the same moment. The floor is a bare aiohttp
application in its own process that answers every route with a fixed JSON body: what the
server framework alone costs, under the same client. Besides answers/s (which the client
shares the machine's cores with), the table shows the server's own CPU time per answer,
read from /proc: the measure least disturbed by the client and the neighbours.

Every run writes `sandbox.json` under `--results-dir` (bench/results: `relay bench report`
shows it), with a target on `conversion_event`: at least 3x less server CPU per answer
than the baseline (not met without one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web

from relay.broker import free_port
from relay.config import load_mapping
from relay.errors import RelayError
from relay.formats.base import NormalizeContext
from relay.formats.web import adapt_web
from relay.tools.bench import machine
from relay.tools.bench import results as bench_results
from relay.tools.bench.configs import default_config
from relay.tools.bench.events import web_events
from relay.tools.stack import SANDBOX_ARGV, listening_process
from relay.xads import oauth

BENCH_LIMIT: Final = 10**12  # budgets out of the way: this measures the sandbox's speed
SCENARIO: Final = "sandbox"
CPU_RATIO_TARGET: Final = 3.0  # conversion_event: baseline's CPU per answer / this tree's
DEFAULTS: Final = {
    "consumer_key": "relay-demo-consumer-key",
    "consumer_secret": "relay-demo-consumer-secret",
    "access_token": "1000000001-relaydemoaccesstoken",
    "access_token_secret": "relay-demo-access-token-secret",
}
APP_ID: Final = "333903271"
PIXEL_ID: Final = "o8z6j"
PIXEL_TOKEN: Final = "demo-pixel-token-o8z6j"
EVENT_ID: Final = "o87ne"
EMAIL_HASH: Final = "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"
WEB_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request ready to send: nothing is computed once the clock runs."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Result:
    scenario: str
    sandbox: str
    requests: int
    events_per_request: int
    seconds: float
    cpu_s: float | None  # the server process's CPU time while it answered

    @property
    def cpu_us_per_answer(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s / self.requests * 1e6

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.requests * self.events_per_request / self.seconds


FLOOR: Final = "floor"  # the bare aiohttp application, not a sandbox


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    pid: int


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def sandbox_process(source: Path | str | None) -> AsyncIterator[Server]:
    """`relay sandbox` on a free port, from `source` (a source tree) or this install; or
    the floor application when `source` is FLOOR."""
    port = free_port()
    env = {
        **os.environ,
        "RELAY_ACCOUNT_LIMIT": str(BENCH_LIMIT),
        "RELAY_SANDBOX_TOKEN_LIMIT": str(BENCH_LIMIT),
    }
    if isinstance(source, Path):
        env["PYTHONPATH"] = str(source)
    argv = ["-m", "relay.tools.bench_sandbox"] if source == FLOOR else [*SANDBOX_ARGV]
    cwd = str(source) if isinstance(source, Path) else None
    async with listening_process([*argv, str(port)], env, cwd=cwd) as process:
        yield Server(f"http://127.0.0.1:{port}", process.pid)


def _signed(method: str, url: str) -> dict[str, str]:
    return {
        "Authorization": oauth.authorization_header(
            method,
            url,
            consumer_key=DEFAULTS["consumer_key"],
            consumer_secret=DEFAULTS["consumer_secret"],
            token=DEFAULTS["access_token"],
            token_secret=DEFAULTS["access_token_secret"],
        )
    }


def conversion_events(base: str, count: int) -> list[Prepared]:
    """`count` distinct app conversions (INSTALL, a new device each), each signed."""
    prepared = []
    for i in range(count):
        query = urlencode(
            {
                "app_id": APP_ID,
                "os_type": "IOS",
                "hashed_device_id": f"bench-device-{i:08d}",
                "conversion_type": "INSTALL",
                "conversion_time": "2026-11-20T10:00:00.123Z",
            }
        )
        url = f"{base}/12/conversion_event?{query}"
        prepared.append(Prepared("POST", url, _signed("POST", url)))
    return prepared


def web_body(batch: int) -> bytes:
    return orjson.dumps(
        {
            "conversions": [
                {
                    "conversion_time": "2026-11-20T10:00:00.123Z",
                    "event_id": EVENT_ID,
                    "identifiers": [{"hashed_email": EMAIL_HASH}],
                    "conversion_id": f"bench-{batch}-{i}",
                    "value": "20.00",
                    "price_currency": "USD",
                    "number_items": 1,
                }
                for i in range(WEB_BATCH)
            ]
        }
    )


@functools.cache
def relay_web_bodies(count: int) -> tuple[bytes, ...]:
    """`count` bodies of 500 conversions as the relay sends them: `relay bench
    throughput`'s web events, normalized by the relay's web adapter."""
    config = default_config()
    pixels = [p for p in config.pixels if p.id == PIXEL_ID]
    ctx = NormalizeContext(mapping=load_mapping(config.path))
    conversions = [
        adapt_web(orjson.loads(event.value), ctx).payload
        for event in web_events(count * WEB_BATCH, pixels, seed=count)
    ]
    return tuple(
        orjson.dumps({"conversions": conversions[i : i + WEB_BATCH]})
        for i in range(0, len(conversions), WEB_BATCH)
    )


def web_batches(
    base: str, count: int, *, pixel_token: bool, bodies: Sequence[bytes] | None = None
) -> list[Prepared]:
    url = f"{base}/12/measurement/conversions/{PIXEL_ID}"
    prepared = []
    for batch in range(count):
        auth = {"X-Pixel-Token": PIXEL_TOKEN} if pixel_token else _signed("POST", url)
        headers = {"Content-Type": "application/json", **auth}
        body = web_body(batch) if bodies is None else bodies[batch]
        prepared.append(Prepared("POST", url, headers, body))
    return prepared


async def send_all(requests: Sequence[Prepared], in_flight: int) -> float:
    """Seconds to get every answer with `in_flight` requests outstanding; all must be 200."""
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=in_flight)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for request in queue:
                async with session.request(
                    request.method, request.url, headers=request.headers, data=request.body
                ) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RelayError(f"sandbox answered {response.status}: {body[:300]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - started


Scenario = tuple[str, int, Callable[[str], list[Prepared]]]


def scenarios(events: int, batches: int) -> list[Scenario]:
    return [
        ("conversion_event, OAuth", 1, lambda base: conversion_events(base, events)),
        (
            f"web, batches of {WEB_BATCH}, OAuth",
            WEB_BATCH,
            lambda base: web_batches(base, batches, pixel_token=False),
        ),
        (
            f"web, batches of {WEB_BATCH}, X-Pixel-Token",
            WEB_BATCH,
            lambda base: web_batches(base, batches, pixel_token=True),
        ),
        (
            f"web, batches of {WEB_BATCH} as the relay sends them, OAuth",
            WEB_BATCH,
            lambda base: web_batches(
                base, batches, pixel_token=False, bodies=relay_web_bodies(batches)
            ),
        ),
    ]


async def measure(
    sandbox: str, source: Path | str | None, scenario: Scenario, in_flight: int
) -> Result:
    name, per_request, build = scenario
    async with sandbox_process(source) as server:
        warm = build(server.url)[: max(in_flight * 4, 8)]
        await send_all(warm, in_flight)  # first connections, imports, caches
        requests = build(server.url)  # signed now: fresh timestamps, nonces never seen
        before = cpu_seconds(server.pid)
        seconds = await send_all(requests, in_flight)
        after = cpu_seconds(server.pid)
    cpu = after - before if after is not None and before is not None else None
    return Result(name, sandbox, len(requests), per_request, seconds, cpu)


async def bench_sandbox(
    events: int,
    batches: int,
    in_flight: int,
    baseline: Path | None,
    report: Callable[[str], None],
    rounds: int = 3,
    only: str | None = None,
) -> list[Result]:
    """Each scenario `rounds` times on every server in turn; the best round of each is kept
    (a shared machine only ever makes a round slower)."""
    results: list[Result] = []
    targets: list[tuple[str, Path | str | None]] = [("this tree", None)]
    if baseline is not None:
        targets.append((f"baseline {_commit(baseline)}", baseline))
    targets.append(("floor: bare aiohttp", FLOOR))
    for scenario in scenarios(events, batches):
        if only is not None and only not in scenario[0]:
            continue
        best: dict[str, Result] = {}
        for round_no in range(1, rounds + 1):
            for label, source in targets:
                report(f"{scenario[0]}: {label}, round {round_no}/{rounds}")
                result = await measure(label, source, scenario, in_flight)
                if label not in best or result.seconds < best[label].seconds:
                    best[label] = result
        results.extend(best[label] for label, _ in targets)
    return results


def _commit(tree: Path | None = None) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tree,
    )
    return done.stdout.strip() or "unknown"


def render(results: Sequence[Result], command: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## sandbox, {stamp} (commit {_commit()})",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        "| scenario | server | requests | seconds | answers/s | events/s | server CPU µs/answer |",
        "|---|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r.scenario} | {r.sandbox} | {r.requests:,} | {r.seconds:.2f} "
            f"| {r.requests_per_s:,.0f} | {r.events_per_s:,.0f} | {_us(r.cpu_us_per_answer)} |"
            for r in results
        ),
        "",
    ]
    by_scenario: dict[str, list[Result]] = {}
    for r in results:
        by_scenario.setdefault(r.scenario, []).append(r)
    ratios = []
    for name, rs in by_scenario.items():
        mine, base = rs[0], next((r for r in rs if r.sandbox.startswith("baseline")), None)
        if base is None:
            continue
        ratio = f"{name}: **{mine.requests_per_s / base.requests_per_s:.2f}x** answers/s"
        if mine.cpu_us_per_answer and base.cpu_us_per_answer:
            ratio += f", {base.cpu_us_per_answer / mine.cpu_us_per_answer:.2f}x less CPU/answer"
        ratios.append(ratio)
    if ratios:
        lines += ["This tree vs. baseline, side by side: " + "; ".join(ratios) + ".", ""]
    return "\n".join(lines)


def result_doc(
    found: Sequence[Result], command: str, started: float, load_at_start: str
) -> dict[str, Any]:
    """The run as a bench/results document (results.py's fields)."""
    scenario = scenarios(0, 0)[0][0]
    mine = next((r for r in found if r.scenario == scenario and r.sandbox == "this tree"), None)
    base = next(
        (r for r in found if r.scenario == scenario and r.sandbox.startswith("baseline")), None
    )
    ratio = None
    if mine and base and mine.cpu_us_per_answer and base.cpu_us_per_answer:
        ratio = round(base.cpu_us_per_answer / mine.cpu_us_per_answer, 2)
    target = bench_results.Target(
        "conversion_event: less server CPU per answer than the baseline",
        ratio,
        ">=",
        CPU_RATIO_TARGET,
        "x",
    )
    rows = [
        {
            "scenario": r.scenario,
            "server": r.sandbox,
            "requests": r.requests,
            "seconds": round(r.seconds, 3),
            "answers_per_s": round(r.requests_per_s, 1),
            "events_per_s": round(r.events_per_s, 1),
            "server_cpu_us_per_answer": None
            if r.cpu_us_per_answer is None
            else round(r.cpu_us_per_answer, 1),
        }
        for r in found
    ]
    return {
        "scenario": SCENARIO,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": bench_results.commit(),
        "machine": machine(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": bench_results.load_average(),
        "command": command,
        "quick": False,
        "settings": "relay sandbox with budgets out of the way; best of the rounds by seconds",
        "duration_s": round(time.monotonic() - started, 1),
        "result": {"rows": rows, "conversion_event_cpu_ratio": ratio},
        "targets": [target.to_json()],
        "pass": target.passed,
        "error": None,
    }


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def add_parser(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sandbox = bench_sub.add_parser(
        "sandbox", help="answers/s of `relay sandbox` to a bare aiohttp client"
    )
    sandbox.add_argument("--events", type=int, default=20_000, help="conversion_event requests")
    sandbox.add_argument("--batches", type=int, default=200, help="web requests of 500 each")
    sandbox.add_argument("--in-flight", type=int, default=8, help="requests outstanding")
    sandbox.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    sandbox.add_argument(
        "--baseline", type=Path, default=None, help="also measure the sandbox of this source tree"
    )
    sandbox.add_argument(
        "--only", default=None, help="only the scenarios whose name contains this text"
    )
    sandbox.add_argument(
        "--write", type=Path, default=None, help="append the results to this markdown file"
    )
    sandbox.add_argument(
        "--results-dir",
        type=Path,
        default=bench_results.RESULTS_DIR,
        help="where sandbox.json is written (relay bench report reads it)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    def report(line: str) -> None:
        print(f"\r{line:<70}", end="", file=sys.stderr, flush=True)

    started, load_at_start = time.monotonic(), bench_results.load_average()
    found = asyncio.run(
        bench_sandbox(
            args.events,
            args.batches,
            args.in_flight,
            args.baseline,
            report,
            args.rounds,
            args.only,
        )
    )
    command = f"relay bench sandbox --events {args.events} --batches {args.batches}"
    command += f" --in-flight {args.in_flight} --rounds {args.rounds}"
    if args.only is not None:
        command += f" --only '{args.only}'"
    if args.baseline is not None:
        command += f" --baseline <worktree of {_commit(args.baseline)}>"
    text = render(found, command)
    print("\n" + text)
    if args.write is not None:
        with args.write.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
    path = bench_results.write(result_doc(found, command, started, load_at_start), args.results_dir)
    print(f"wrote {path}")
    return 0


async def _floor_answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b'{"data":{}}', content_type="application/json")


def serve_floor(port: int) -> None:
    """The floor: aiohttp answering every route at once, nothing else."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", _floor_answer)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda *_: print("floor listening", flush=True),
    )


if __name__ == "__main__":
    serve_floor(int(sys.argv[1]))
