"""`relay bench <scenario>`: the options of every scenario, and one way to run any of them.

Every scenario is bounded in time (`--timeout`) and size, ends every process it started
(also on Ctrl-C or failure), stays on loopback, prints progress lines on stderr, has a
`--quick` size for smoke runs, and writes `<results-dir>/<name>.json`. The exit code is 0
when every target was met, 1 otherwise (a scenario that could not finish reports why).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

from relay.errors import ConfigError, RelayError
from relay.signals import run_until_signalled
from relay.tools.bench.context import Run, is_secret_name
from relay.tools.bench.outcome import Outcome
from relay.tools.bench.results import RESULTS_DIR, build, summary_line, write

QUICK_TIMEOUT_S: Final = 240.0
DEFAULT_LOAD: Final = 0.5


@dataclass(frozen=True)
class Size:
    """An option whose default differs between a full run and `--quick`."""

    flag: str
    full: float
    quick: float
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def default(self, quick: bool) -> float:
        value = self.quick if quick else self.full
        return int(value) if float(value).is_integer() else value


class Scenario(NamedTuple):
    help: str
    full_timeout_s: float
    sizes: tuple[Size, ...]
    runner: str  # module.function, imported on use: each scenario pulls in only what it needs


SCENARIOS: Final[dict[str, Scenario]] = {
    "throughput": Scenario(
        "end to end (a `relay run` process) vs. its floor, same run",
        1200,
        (
            Size("--events", 100_000, 5_000, "measured events"),
            Size(
                "--rounds", 3, 1, "web: floor and end to end measured this many times, alternating"
            ),
        ),
        "relay.tools.bench.throughput.run_throughput",
    ),
    "latency": Scenario(
        "p50/p95/p99 from the Kafka append to X's 2xx at a share of measured capacity",
        1200,
        (
            Size("--duration-s", 60, 8, "seconds of paced load"),
            Size("--capacity-events", 50_000, 4_000, "events of the capacity probe"),
        ),
        "relay.tools.bench.latency.run_latency",
    ),
    "startup": Scenario(
        "seconds from `relay run` to its first delivery: first start, restart, static membership",
        600,
        (Size("--rounds", 5, 2, "starts of each kind"),),
        "relay.tools.bench.startup.run_startup",
    ),
    "chaos": Scenario(
        "kill -9 the relay at random moments, restart it: lost and duplicates",
        2400,
        (
            Size("--kill9", 10, 2, "how many kills"),
            Size("--events", 100_000, 6_000, "events of the run"),
        ),
        "relay.tools.bench.chaos.run_chaos",
    ),
    "outage": Scenario(
        "X answers only 503 for a while mid-run, then recovers: lost, dead-lettered, resume",
        900,
        (
            Size("--events", 20_000, 2_000, "events of the run"),
            Size("--outage-s", 90, 6, "seconds of 503"),
        ),
        "relay.tools.bench.outage.run_outage",
    ),
    "faults": Scenario(
        "mixed 5xx, hung requests, dropped connections and a 429 storm",
        1200,
        (
            Size("--events", 20_000, 2_000, "events of the run"),
            Size("--storm-s", 20, 3, "seconds of the 429 storm"),
        ),
        "relay.tools.bench.faults.run_faults",
    ),
    "broker-pause": Scenario(
        "the broker stopped (SIGSTOP) mid-run, then continued",
        900,
        (
            Size("--events", 20_000, 2_000, "events of the run"),
            Size("--pause-s", 20, 4, "seconds the broker is stopped"),
        ),
        "relay.tools.bench.broker_pause.run_broker_pause",
    ),
    "budget": Scenario(
        "worker processes sharing accounts with backlogs under a compressed budget",
        900,
        (
            Size("--workers", 3, 2, "relay processes"),
            Size("--accounts", 20, 4, "accounts with a backlog"),
            Size("--limit", 600, 600, "events per account per window (relay and sandbox)"),
            Size("--window-s", 10, 6, "budget window in seconds"),
            Size("--windows", 6, 3, "windows to run"),
        ),
        "relay.tools.bench.budget.run_budget",
    ),
    "hot-cold": Scenario(
        "one hot account with a spent budget and a backlog, cold accounts on its partition",
        1500,
        (
            Size("--hot-events", 200_000, 5_000, "the hot account's backlog"),
            Size("--cold-accounts", 19, 4, "cold accounts"),
            Size("--duration-s", 60, 8, "seconds of cold trickle per phase"),
        ),
        "relay.tools.bench.hot_cold.run_hot_cold",
    ),
    "memory": Scenario(
        "a large backlog over many accounts: peak RSS of the worker, nothing lost",
        3000,
        (
            Size("--events", 1_000_000, 20_000, "backlog events"),
            Size("--accounts", 10_000, 200, "accounts"),
        ),
        "relay.tools.bench.memory.run_memory",
    ),
}


def add_bench_parser(sub: Any) -> None:
    """`relay bench ...` under the main parser's subcommands."""
    bench = sub.add_parser("bench", help="benchmarks (results in bench/results, BENCHMARKS.md)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="SCENARIO")
    for name, (help_text, timeout_s, sizes, _) in SCENARIOS.items():
        parser = bench_sub.add_parser(name, help=help_text, description=help_text)
        for size in sizes:
            kind = int if float(size.full).is_integer() else float
            parser.add_argument(
                size.flag,
                type=kind,
                default=None,
                help=f"{size.help} (default {size.full:g}; --quick: {size.quick:g})",
            )
        if name in ("throughput", "chaos"):
            parser.add_argument("--kind", choices=("web", "mobile"), default="web")
        if name == "latency":
            parser.add_argument("--kind", choices=("web", "mobile", "all"), default="all")
            parser.add_argument(
                "--load", type=float, default=DEFAULT_LOAD, help="share of measured capacity"
            )
        if name == "throughput":
            parser.add_argument(
                "--split-stages",
                action="store_true",
                help="run `relay run --stage ingest` and `--stage deliver` as two processes",
            )
            parser.add_argument(
                "--write", type=Path, default=None, help="regenerate this report afterwards"
            )
        parser.add_argument("--quick", action="store_true", help="smoke-test size")
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help=f"give up after this many seconds (default {timeout_s:g}; "
            f"--quick: {QUICK_TIMEOUT_S:g})",
        )
        parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a RELAY_* setting for every relay process (repeatable; recorded)",
        )
    from relay.tools.bench_sandbox import add_parser as add_sandbox_parser

    add_sandbox_parser(bench_sub)  # the emulator's own benchmark, run by its own module
    report = bench_sub.add_parser("report", help="regenerate BENCHMARKS.md from the results")
    report.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    report.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    report.add_argument("--charts-dir", type=Path, default=Path("bench/charts"))


def _settings(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("RELAY_"):
            raise ConfigError(f"--set {item!r} is not RELAY_NAME=VALUE")
        values[name] = value
    return values


def _command(args: argparse.Namespace, sizes: tuple[Size, ...]) -> str:
    parts = ["relay", "bench", args.bench]
    if args.quick:
        parts.append("--quick")
    for size in sizes:
        if getattr(args, size.dest) is not None:
            parts += [size.flag, f"{getattr(args, size.dest):g}"]
    if getattr(args, "kind", None) not in (None, "web", "all") or args.bench == "chaos":
        parts += ["--kind", args.kind]
    if getattr(args, "split_stages", False):
        parts.append("--split-stages")
    if args.bench == "latency" and args.load != DEFAULT_LOAD:
        parts += ["--load", f"{args.load:g}"]
    for item in args.set:
        name = item.partition("=")[0]
        parts.append(f"--set {name}=(set)" if is_secret_name(name) else f"--set {item}")
    return " ".join(parts)


def _scenario(name: str) -> Callable[..., Coroutine[Any, Any, None]]:
    if name not in SCENARIOS:
        raise ConfigError(f"unknown benchmark {name!r}")
    module, _, function = SCENARIOS[name].runner.rpartition(".")
    return cast(
        Callable[..., Coroutine[Any, Any, None]],
        getattr(importlib.import_module(module), function),
    )


def result_name(args: argparse.Namespace) -> str:
    if args.bench == "throughput" and args.split_stages:
        return f"throughput-{args.kind}-split"
    if args.bench in ("throughput", "chaos"):
        return f"{args.bench}-{args.kind}"
    return str(args.bench)


class BenchStopped(RelayError):
    """The bench was stopped by a signal before its scenario ended."""


def run_bench(args: argparse.Namespace) -> int:
    if args.bench == "report":
        from relay.tools.bench.report import run_report

        return run_report(args.results_dir, args.output, args.charts_dir)
    scenario = SCENARIOS[args.bench]
    options: dict[str, Any] = {}
    for size in scenario.sizes:
        value = getattr(args, size.dest)
        options[size.dest] = value if value is not None else size.default(args.quick)
    if getattr(args, "kind", None) is not None:
        options["kind"] = args.kind
    if args.bench == "latency":
        options["load"] = args.load
    if args.bench == "throughput":
        options["split_stages"] = args.split_stages
    timeout_s = args.timeout or (QUICK_TIMEOUT_S if args.quick else scenario.full_timeout_s)
    work_dir = Path(tempfile.mkdtemp(prefix=f"relay-bench-{args.bench}-"))
    run = Run(
        scenario=args.bench,
        command=_command(args, scenario.sizes),
        quick=args.quick,
        timeout_s=timeout_s,
        work_dir=work_dir,
        relay_env=_settings(args.set),
    )
    out = Outcome(result_name(args))
    error: str | None = None

    async def scenario_main() -> int:
        await _scenario(args.bench)(run, out, **options)
        return 0

    try:
        # SIGTERM/SIGINT cancel the scenario, so that it stops every process it started.
        stopped = run_until_signalled(scenario_main())
        if stopped:
            raise BenchStopped(f"stopped by signal {stopped - 128}")
    except Exception as exc:  # reported in the results: a scenario that breaks still tells
        error = f"{type(exc).__name__}: {exc}"
        run.say(f"failed: {error}")
        if not isinstance(exc, RelayError):
            traceback.print_exc(file=sys.stderr)
    doc = build(run, out.name, out.result, out.targets, settings=out.settings, error=error)
    path = write(doc, args.results_dir)
    print(summary_line(doc))
    print(f"settings: {doc['settings']}")
    print(f"results: {path}")
    if error is None and doc.get("pass") and not run.keep_logs:  # a miss: logs for a look
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        print(f"logs of the processes: {work_dir}", file=sys.stderr)
    if args.bench == "throughput" and args.write is not None:
        from relay.tools.bench.report import run_report

        run_report(args.results_dir, args.write, Path("bench/charts"))
    return 0 if doc["pass"] else 1
