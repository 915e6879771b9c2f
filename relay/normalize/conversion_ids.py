"""Conversion ids derived for events that arrive without one."""

from __future__ import annotations

import hashlib

import orjson


def derive_conversion_id(*parts: str | None) -> str:
    """First 32 hex characters of SHA-256 over the normalized parts, in order.

    X counts the same event with the same conversion_id once within 48 hours. Deriving the id
    from the normalized content (never from the Kafka offset or the time of processing)
    makes a retried, replayed or re-produced copy of an event carry the same id, so X
    deduplicates it instead of counting it twice. The JSON array keeps the join unambiguous.
    """
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]
