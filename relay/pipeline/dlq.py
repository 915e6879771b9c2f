"""Dead-letter records with the contract's headers (see design.md, "Dead-letter record")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from relay.kafka import Header, OutRecord

MAX_HEADER_MESSAGE = 1000
# How often `relay dlq redrive` sent this record back; it travels with the record through
# ingest and delivery, so a record that fails again is dead-lettered with its count.
REDRIVE_COUNT_HEADER: Final = "relay.redrive.count"


@dataclass(frozen=True, slots=True)
class Origin:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record is dead-lettered. `message` must not hold raw PII."""

    stage: str  # ingest | deliver
    error_class: str
    message: str
    field: str | None = None
    http_status: int | None = None
    api_code: str | None = None
    attempts: int | None = None
    first_attempt_at: float | None = None  # epoch seconds
    last_attempt_at: float | None = None


def iso_ms(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def carried_headers(headers: Sequence[Header] | None) -> tuple[Header, ...]:
    """The headers a record keeps through the stages: the redrive count."""
    if not headers:
        return ()
    return tuple(h for h in headers if h[0] == REDRIVE_COUNT_HEADER)


def redrive_count(headers: Sequence[Header] | None) -> int:
    for name, value in headers or ():
        if name == REDRIVE_COUNT_HEADER:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


ERROR_CLASS_HEADER: Final = "relay.error.class"  # machine-readable: what tools count by


def dead_letter(
    topic: str,
    value: bytes,
    key: bytes | None,
    failure: Failure,
    origin: Origin,
    extra_headers: Sequence[Header] = (),
) -> OutRecord:
    headers: list[Header] = [
        ("relay.error.stage", failure.stage.encode()),
        (ERROR_CLASS_HEADER, failure.error_class.encode()),
        ("relay.error.message", failure.message[:MAX_HEADER_MESSAGE].encode()),
    ]
    optional: list[tuple[str, object]] = [
        ("relay.error.field", failure.field),
        ("relay.error.http_status", failure.http_status),
        ("relay.error.api_code", failure.api_code),
        ("relay.error.attempts", failure.attempts),
        (
            "relay.error.first_attempt_at",
            iso_ms(failure.first_attempt_at) if failure.first_attempt_at else None,
        ),
        (
            "relay.error.last_attempt_at",
            iso_ms(failure.last_attempt_at) if failure.last_attempt_at else None,
        ),
    ]
    headers += [(name, str(v).encode()) for name, v in optional if v is not None]
    headers += [
        ("relay.origin.topic", origin.topic.encode()),
        ("relay.origin.partition", str(origin.partition).encode()),
        ("relay.origin.offset", str(origin.offset).encode()),
        *extra_headers,
    ]
    # Keyed like the original so a redrive lands on the same partition key.
    return OutRecord(topic=topic, value=value, key=key, headers=headers)
