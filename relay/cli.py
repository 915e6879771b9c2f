"""The `relay` command line: parse, build settings, configure logging, call one `run_*`."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from relay import __version__
from relay.config import (
    KNOWN_FORMATS,
    LOG_LEVELS,
    SETTINGS,
    load_mapping,
    load_settings,
    log_format_from,
    log_level_from,
    offline_settings,
)
from relay.errors import ConfigError, RelayError
from relay.observability.logs import configure_logging
from relay.settings_table import help_text

EPILOG = """\
Settings come from RELAY_* environment variables: `relay run --help` lists them all with
their defaults (and README.md). `relay config check` validates them.
"""


# Commands whose parsers live with their tools (which import the X client, aiohttp, ...):
# added only when the command line may need them, so that `relay run` starts without them.
TOOL_COMMANDS: Final = ("api", "config", "bench")


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (None: none, or only options)."""
    items = iter(argv)
    for item in items:
        if item == "--log-level":
            next(items, None)
        elif not item.startswith("-"):
            return item
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given `command` (another than the tools'), the tools'
    parsers are left out (`relay run --help` still shows everything about `run`)."""
    parser = argparse.ArgumentParser(
        prog="relay",
        description="Relay app and web conversions from Kafka to the X Ads API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        help="default: RELAY_LOG_LEVEL, else INFO",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="the worker: ingest and/or deliver stage",
        epilog=help_text(SETTINGS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--stage",
        choices=("all", "ingest", "deliver"),
        default="all",
        help="which stage(s) this process runs (default: all)",
    )

    broker = sub.add_parser("broker", help="the embedded Kafka-compatible broker (memory only)")
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument("--port", type=int, default=9092)

    sandbox = sub.add_parser("sandbox", help="the X Ads API emulator")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML/YAML with accounts, pixels, credentials (default: built in)",
    )
    sandbox.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="STATUS=RATE",
        help="answer this share of X's requests with STATUS, e.g. 503=0.05 (repeatable)",
    )
    sandbox.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    sandbox.add_argument(
        "--latency-jitter-ms", type=float, default=0.0, help="plus up to this much, at random"
    )
    sandbox.add_argument(
        "--hang-rate", type=float, default=0.0, help="share of requests never answered"
    )
    sandbox.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of connections closed unanswered"
    )
    sandbox.add_argument("--seed", type=int, default=None, help="repeatable fault decisions")

    demo = sub.add_parser("demo", help="broker + sandbox + relay + generator, end to end")
    demo.add_argument("--count", type=int, default=30_000, help="web events to produce")
    demo.add_argument(
        "--app-count", type=int, default=5_000, help="AppsFlyer (MMP) events to produce"
    )
    demo.add_argument("--invalid-ratio", type=float, default=0.02)
    demo.add_argument("--opt-out-ratio", type=float, default=0.01)
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds before giving up")

    produce = sub.add_parser("produce", help="write synthetic input events to Kafka")
    produce.add_argument("--format", dest="fmt", default="web", choices=KNOWN_FORMATS)
    produce.add_argument("--count", type=int, default=10_000)
    produce.add_argument("--rate", type=float, default=None, help="events per second (max)")
    produce.add_argument("--accounts", type=int, default=None, help="spread over K accounts")
    produce.add_argument("--topic", default=None, help="default: the format's RELAY_INPUTS topic")
    produce.add_argument("--invalid-ratio", type=float, default=0.0)
    produce.add_argument("--opt-out-ratio", type=float, default=0.0)
    produce.add_argument(
        "--seed", type=int, default=None, help="repeat a run (default: random, printed)"
    )

    validate = sub.add_parser(
        "validate",
        help="check a feed offline: the adapters over JSON lines, exit 1 when any is invalid",
        description="One line per bad record (line, class, field, message), then a summary. "
        "Event maps and apps come from RELAY_CONFIG (or --config); values are never printed.",
    )
    validate.add_argument("--format", dest="fmt", required=True, choices=KNOWN_FORMATS)
    validate.add_argument("file", nargs="?", default="-", help="JSON lines (default: stdin)")
    validate.add_argument("--config", type=Path, default=None, help="mapping file (TOML/YAML)")

    dlq = sub.add_parser("dlq", help="the dead-letter topic: show, redrive")
    dlq_sub = dlq.add_subparsers(dest="dlq", required=True, metavar="ACTION")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="match a header, e.g. class=invalid_json, stage=deliver, field=email, "
        "api_code=INVALID_PARAMETER, redrive_count=1 (repeatable: all must match)",
    )
    redrive = dlq_sub.add_parser(
        "redrive",
        parents=[filters],
        help="send dead letters back to their origin topic (or --to)",
        description="Reads the DLQ up to the end it had at start and sends each matching dead "
        "letter back once, with a relay.redrive.count header; one already redriven "
        "RELAY_DLQ_MAX_REDRIVES times (default 3) is left alone unless --force. The redrive "
        "group commits what it read.",
    )
    redrive.add_argument("--to", default=None, help="target topic (default: the origin topic)")
    redrive.add_argument("--group", default=None, help="consumer group (default <prefix>-redrive)")
    redrive.add_argument(
        "--dry-run", action="store_true", help="say what would be sent; send and commit nothing"
    )
    redrive.add_argument(
        "--force", action="store_true", help="send even those redriven too often already"
    )
    redrive.set_defaults(dlq="redrive")
    show = dlq_sub.add_parser(
        "show",
        aliases=["inspect"],
        parents=[filters],
        help="counts by stage, class and field, and sample records (read-only)",
        description="Reads the DLQ up to its end at start, commits nothing. Identifier values "
        "(emails, phones, device ids, IPs) in the samples are masked unless --show-pii.",
    )
    show.add_argument("--samples", type=int, default=3, help="records to show (default 3)")
    show.add_argument("--show-pii", action="store_true", help="show identifier values as stored")
    show.add_argument("--json", action="store_true", help="one JSON document")
    show.set_defaults(dlq="show")

    known = set(sub.choices)
    if command is not None and command in known:
        return parser
    from relay.tools.api import add_api_parser
    from relay.tools.config_check import add_config_parser

    add_api_parser(sub)
    add_config_parser(sub)

    from relay.tools.bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(command_of(argv)).parse_args(argv)
    configure_logging(args.log_level or log_level_from(os.environ), log_format_from(os.environ))
    try:
        return dispatch(args)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"relay: error: {line}", file=sys.stderr)
        return 2
    except RelayError as exc:
        print(f"relay: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from relay.observability.startup import StartupTimeline

        timeline = StartupTimeline.of_this_process()
        from relay.pipeline.worker import run_worker
        from relay.tools.config_check import raise_on_problems

        timeline.mark("imports")
        settings = load_settings()
        raise_on_problems(settings)
        timeline.mark("settings")
        return run_worker(settings, args.stage, timeline)
    if args.command == "broker":
        from relay.broker import run_broker

        return run_broker(args.host, args.port)
    if args.command == "sandbox":
        from relay.sandbox.faults import Faults, parse_error_rates
        from relay.sandbox.server import run_sandbox

        faults = Faults(
            error_rates=parse_error_rates(args.error_rate),
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
            hang_rate=args.hang_rate,
            drop_rate=args.drop_rate,
            seed=args.seed,
        )
        try:
            run_sandbox(args.host, args.port, args.config, faults)
        except OSError as exc:  # the port is taken, or the host is not ours
            print(
                f"relay sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.command == "demo":
        from relay.tools.demo import run_demo

        return run_demo(
            args.count, args.invalid_ratio, args.opt_out_ratio, args.timeout, args.app_count
        )
    if args.command == "produce":
        return run_produce(args)
    if args.command == "validate":
        from relay.tools.validate import run_validate

        settings = offline_settings()
        return run_validate(
            args.fmt,
            args.file,
            load_mapping(args.config) if args.config else settings.mapping,
            hmac_key=base64.b64decode(settings.device_id_hmac_key.reveal()),
            default_phone_region=settings.default_phone_region,
        )
    if args.command == "dlq":
        return run_dlq(args)
    if args.command == "api":
        from relay.tools.api import EXIT_USAGE, report_failure, run_api

        try:
            settings = load_settings()
        except ConfigError as exc:  # --json: the settings' problems as JSON too
            return report_failure(args.json, EXIT_USAGE, "bad_settings", str(exc))
        return run_api(args, settings)
    if args.command == "config":
        from relay.tools.config_check import run_config

        return run_config(args)
    if args.command == "bench" and args.bench == "sandbox":
        from relay.tools.bench_sandbox import run_from_args

        return run_from_args(args)
    if args.command == "bench":
        from relay.tools.bench import run_bench

        return run_bench(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse enforces the choices


def run_dlq(args: argparse.Namespace) -> int:
    from relay.tools.redrive import parse_filters

    settings = load_settings()
    filters = parse_filters(args.filter)
    if args.dlq == "show":
        import orjson

        from relay.tools.dlq_show import inspect_dlq, render_report

        report = asyncio.run(
            inspect_dlq(settings, filters=filters, samples=args.samples, show_pii=args.show_pii)
        )
        if args.json:
            print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        else:
            print(render_report(report, settings.dlq_topic))
        return 0
    from relay.tools.progress import ProgressLine
    from relay.tools.redrive import describe, redrive

    result = asyncio.run(
        redrive(
            settings,
            to=args.to,
            filters=filters,
            group=args.group,
            dry_run=args.dry_run,
            force=args.force,
            progress=ProgressLine(),
        )
    )
    for line in describe(result, dry_run=args.dry_run, max_redrives=settings.dlq_max_redrives):
        print(line)
    return 0


def run_produce(args: argparse.Namespace) -> int:
    import secrets

    from relay.tools.produce import produce
    from relay.tools.progress import ProgressLine

    settings = load_settings()
    if not (settings.mapping.pixels or settings.mapping.apps):
        raise ConfigError(
            "no pixels or apps configured: name a mapping file in RELAY_CONFIG "
            "(e.g. relay/data/defaults.toml), or point RELAY_API_BASE_URL at a local sandbox "
            "to use its packaged defaults"
        )
    # A fresh seed by default: the same seed repeats the same conversion ids, which X
    # discards as duplicates.
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    print(f"seed {seed} (--seed {seed} repeats this run)", file=sys.stderr)
    progress = ProgressLine()
    summary = asyncio.run(
        produce(
            settings,
            fmt=args.fmt,
            count=args.count,
            topic=args.topic,
            rate=args.rate,
            accounts=args.accounts,
            invalid_ratio=args.invalid_ratio,
            opt_out_ratio=args.opt_out_ratio,
            seed=seed,
            progress=lambda s: progress.show(f"produced {s.produced:,}"),
        )
    )
    progress.done()
    print(
        f"produced {summary.produced:,}: {summary.deliver:,} valid, "
        f"{summary.dead_letter:,} invalid, {summary.drop:,} opted out (seed {seed})"
    )
    return 0
