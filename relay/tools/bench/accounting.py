"""Every produced event accounted for: in the sandbox's journal, in the dead-letter topic, or
lost; and what X received more than once."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord

from relay.pipeline.dlq import ERROR_CLASS_HEADER
from relay.tools.bench.events import Kind, dead_letter_identity, entry_identity
from relay.tools.bench.kafka_io import read_topic
from relay.tools.bench.stack import Stack


@dataclass(frozen=True)
class Accounting:
    produced: int
    delivered: int  # distinct produced events X accepted
    dead_lettered: int  # distinct produced events in the DLQ (and not delivered)
    lost: int
    duplicates: int  # accepted conversions beyond one per event
    unexpected: int  # accepted conversions of no produced event (must be 0)

    def to_json(self) -> dict[str, int]:
        return {
            "produced": self.produced,
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
        }


def received_s(entry: dict[str, Any]) -> float:
    """When the sandbox accepted a journal entry (epoch seconds, ms precision)."""
    return datetime.fromisoformat(str(entry["received_at"]).replace("Z", "+00:00")).timestamp()


def account(
    produced: Iterable[str], entries: Sequence[dict[str, Any]], dlq: Iterable[str], kind: Kind
) -> Accounting:
    wanted = set(produced)
    seen = Counter(entry_identity(e, kind) for e in entries)
    delivered = wanted & seen.keys()
    dead = (set(dlq) & wanted) - delivered
    return Accounting(
        produced=len(wanted),
        delivered=len(delivered),
        dead_lettered=len(dead),
        lost=len(wanted - delivered - dead),
        duplicates=sum(n - 1 for n in seen.values()),
        unexpected=sum(n for key, n in seen.items() if key not in wanted),
    )


def duplicates_between(
    entries: Sequence[dict[str, Any]], kind: Kind, marks: Sequence[float]
) -> list[int]:
    """Duplicate receptions bucketed by the interval of `marks` (epoch s, sorted) they fall
    after: bucket i counts those received after mark i and before mark i+1."""
    counts = [0] * len(marks)
    first: set[str] = set()
    for entry in sorted(entries, key=received_s):
        identity = entry_identity(entry, kind)
        if identity not in first:
            first.add(identity)
            continue
        index = bisect.bisect_right(marks, received_s(entry)) - 1
        if index >= 0:
            counts[index] += 1
    return counts


async def dead_letter_identities(stack: Stack, prefix: str, kind: Kind) -> list[str]:
    return (await dead_letters(stack, prefix, kind))[0]


async def dead_letters(stack: Stack, prefix: str, kind: Kind) -> tuple[list[str], dict[str, int]]:
    """(the identities of the dead-lettered events, how many of each error class)."""
    records = await read_topic(stack.bootstrap, f"{prefix}.dlq")
    found = (dead_letter_identity(r.value, kind) for r in records)
    return [i for i in found if i is not None], error_classes(records)


def error_classes(records: Iterable[ConsumerRecord]) -> dict[str, int]:
    """How many dead letters of each error class (`?`: a record without the header)."""
    return dict(Counter(dict(r.headers).get(ERROR_CLASS_HEADER, b"?").decode() for r in records))
