"""`relay validate --format F [FILE|-]`: the relay's adapters, offline, over JSON lines.

A producer tests its feed before pointing it at the relay: one line per bad record (line
number, error class, field, message) and a summary with counts by outcome. Messages come
from the adapters, which never quote a value: no email, phone or device id is printed.
Device ids are hashed with a throwaway key when no partner key is configured (nothing is
sent anywhere).
"""

from __future__ import annotations

import secrets
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from relay.config import MappingFile
from relay.errors import ConfigError, DroppedEvent, InvalidEvent
from relay.formats.base import NormalizeContext
from relay.formats.registry import adapter_for
from relay.pipeline.ingest_chunk import decode_record

MAX_LINE_BYTES: Final = 8 * 1024 * 1024


@dataclass
class ValidationReport:
    """Counts by outcome; `invalid` and `dropped` by class and reason."""

    accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)

    @property
    def records(self) -> int:
        return self.accepted + self.dropped.total() + self.invalid.total()

    def summary(self) -> str:
        def detail(counts: Counter[str]) -> str:
            if not counts:
                return ""
            return " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) + ")"

        return (
            f"{self.records:,} records: {self.accepted:,} accepted, "
            f"{self.dropped.total():,} dropped{detail(self.dropped)}, "
            f"{self.invalid.total():,} invalid{detail(self.invalid)}"
        )


def validate_lines(
    fmt: str,
    lines: Iterable[bytes],
    ctx: NormalizeContext,
    out: IO[str],
    max_event_bytes: int = MAX_LINE_BYTES,
) -> ValidationReport:
    """Run `fmt`'s adapter over each non-blank line; print one line per invalid record."""
    adapter = adapter_for(fmt)
    report = ValidationReport()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            adapter(decode_record(line, max_event_bytes), ctx)
        except DroppedEvent as drop:
            report.dropped[drop.reason] += 1
        except InvalidEvent as bad:
            report.invalid[bad.error_class] += 1
            print(
                f"line {number}: {bad.error_class} field={bad.field or '-'}: {bad.message}",
                file=out,
            )
        else:
            report.accepted += 1
    return report


def run_validate(
    fmt: str,
    source: str,
    mapping: MappingFile,
    *,
    hmac_key: bytes = b"",
    default_phone_region: str | None = None,
    out: IO[str] | None = None,
) -> int:
    """Exit code 1 when any record is invalid, else 0."""
    out = out or sys.stdout
    ctx = NormalizeContext(
        mapping=mapping,
        default_phone_region=default_phone_region,
        device_id_hmac_key=hmac_key or secrets.token_bytes(32),
    )
    if source == "-":
        report = validate_lines(fmt, sys.stdin.buffer, ctx, out)
    else:
        try:
            with Path(source).open("rb") as lines:
                report = validate_lines(fmt, lines, ctx, out)
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc.strerror}") from None
    print(report.summary(), file=out)
    return 1 if report.invalid else 0
