"""The input record's Kafka timestamp, carried to the deliver stage for end-to-end latency.

Ingest copies the input record's timestamp into a header of the outbound record (not into the
outbound record's own timestamp, which time-based retention reads); delivery reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

ORIGIN_TIMESTAMP_HEADER: Final = "relay.origin.timestamp"


def origin_timestamp_header(timestamp_ms: int) -> tuple[str, bytes]:
    return ORIGIN_TIMESTAMP_HEADER, str(timestamp_ms).encode()


def origin_timestamp_ms(headers: Iterable[tuple[str, bytes]] | None, fallback_ms: int) -> int:
    """The input's timestamp from the header, else `fallback_ms` (the record's own)."""
    for name, value in headers or ():
        if name == ORIGIN_TIMESTAMP_HEADER:
            try:
                return int(value)
            except ValueError:
                break
    return fallback_ms
