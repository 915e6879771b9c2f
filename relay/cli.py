"""The `relay` command line: parse, build settings, configure logging, call one `run_*`."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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
from relay.errors import RelayError
from relay.observability.logs import configure_logging
from relay.settings_table import help_text

EPILOG = """\
Settings come from RELAY_* environment variables: `relay run --help` lists them all with
their defaults (and README.md). `relay config check` validates them.
"""


def build_parser() -> argparse.ArgumentParser:
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
    demo.add_argument("--count", type=int, default=30_000, help="events to produce")
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
    produce.add_argument("--seed", type=int, default=1)

    validate = sub.add_parser(
        "validate",
        help="check a feed offline: the adapters over JSON lines, exit 1 when any is invalid",
        description="One line per bad record (line, class, field, message), then a summary. "
        "Event maps and apps come from RELAY_CONFIG (or --config); values are never printed.",
    )
    validate.add_argument("--format", dest="fmt", required=True, choices=KNOWN_FORMATS)
    validate.add_argument("file", nargs="?", default="-", help="JSON lines (default: stdin)")
    validate.add_argument("--config", type=Path, default=None, help="mapping file (TOML/YAML)")

    dlq = sub.add_parser("dlq", help="the dead-letter topic")
    dlq_sub = dlq.add_subparsers(dest="dlq", required=True, metavar="ACTION")
    redrive = dlq_sub.add_parser(
        "redrive",
        help="send dead letters back to their origin topic (or --to)",
        description="Each dead letter goes back once (the redrive group commits what it read).",
    )
    redrive.add_argument("--to", default=None, help="target topic (default: the origin topic)")
    redrive.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="match a header, e.g. class=invalid_json, stage=deliver, "
        "api_code=INVALID_PARAMETER (repeatable: all must match)",
    )
    redrive.add_argument("--group", default=None, help="consumer group (default <prefix>-redrive)")
    redrive.add_argument("--dry-run", action="store_true", help="count, send nothing")

    from relay.tools.api import add_api_parser
    from relay.tools.config_check import add_config_parser

    add_api_parser(sub)
    add_config_parser(sub)

    bench = sub.add_parser("bench", help="benchmarks (results in BENCHMARKS.md)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    throughput = bench_sub.add_parser(
        "throughput", help="web path end to end vs. a Kafka consume+produce floor"
    )
    throughput.add_argument("--events", type=int, default=200_000)
    throughput.add_argument(
        "--write", type=Path, default=None, help="append the results to this markdown file"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level or log_level_from(os.environ), log_format_from(os.environ))
    try:
        return dispatch(args)
    except RelayError as exc:
        print(f"relay: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from relay.pipeline.worker import run_worker

        return run_worker(load_settings(), args.stage)
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
        run_sandbox(args.host, args.port, args.config, faults)
        return 0
    if args.command == "demo":
        from relay.tools.demo import run_demo

        return run_demo(args.count, args.invalid_ratio, args.opt_out_ratio, args.timeout)
    if args.command == "produce":
        from relay.tools.produce import produce

        summary = asyncio.run(
            produce(
                load_settings(),
                fmt=args.fmt,
                count=args.count,
                topic=args.topic,
                rate=args.rate,
                accounts=args.accounts,
                invalid_ratio=args.invalid_ratio,
                opt_out_ratio=args.opt_out_ratio,
                seed=args.seed,
                progress=lambda s: print(f"\rproduced {s.produced:,}", end="", file=sys.stderr),
            )
        )
        print(
            f"\nproduced {summary.produced:,}: {summary.deliver:,} valid, "
            f"{summary.dead_letter:,} invalid, {summary.drop:,} opted out"
        )
        return 0
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
        from relay.tools.redrive import parse_filters, redrive

        result = asyncio.run(
            redrive(
                load_settings(),
                to=args.to,
                filters=parse_filters(args.filter),
                group=args.group,
                dry_run=args.dry_run,
            )
        )
        verb = "would redrive" if args.dry_run else "redriven"
        print(f"read {result.read:,}, {verb} {result.redriven:,}, skipped {result.skipped:,}")
        return 0
    if args.command == "api":
        from relay.tools.api import run_api

        return run_api(args, load_settings())
    if args.command == "config":
        from relay.tools.config_check import run_config

        return run_config(args)
    if args.command == "bench":
        from relay.tools.bench import run_throughput_bench

        return run_throughput_bench(args.events, args.write)
    raise AssertionError(f"unhandled command {args.command}")  # argparse enforces the choices
