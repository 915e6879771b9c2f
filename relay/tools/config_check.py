"""`relay config`: the settings table, and (later in this module) checks of the settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from relay.config import SETTINGS
from relay.settings_table import markdown, with_table


def add_config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="the settings: table, check")
    config_sub = config.add_subparsers(dest="config", required=True, metavar="ACTION")
    table = config_sub.add_parser("table", help="the settings table in markdown (README.md)")
    table.add_argument(
        "--write", type=Path, default=None, help="replace the table between the marks of FILE"
    )


def run_config(args: argparse.Namespace) -> int:
    if args.config == "table":
        table = markdown(SETTINGS)
        if args.write is None:
            print(table)
        else:
            args.write.write_text(with_table(args.write.read_text("utf-8"), table), "utf-8")
        return 0
    raise AssertionError(f"unhandled config action {args.config}")  # argparse enforces it
