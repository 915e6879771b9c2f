"""Which requests went before the reset X announced, told apart from those already on their
way when X answered the 429.

- Exactly, from the relay's side: only the relay knows both when it learned a reset and when
  each request went on the wire; it logs (and counts, `relay_requests_before_reset_total`)
  every request that went after it had learned X's reset, before that reset (by X's header,
  apart from the bucket that should have stopped it). `sent_before_reset` counts those lines.
- Witnessed by X's side: the sandbox lists each request that arrived before its account's
  announced reset (`GET /_sandbox/early-requests`); the relay's log has a line for each moment
  it learned an account's reset. `arrived_after_learning` keeps the arrivals after that
  moment. Arrival comes after sending, so it holds every request sent knowing the reset, and
  also those sent just before the relay learned it that reached X a little after (loopback:
  well under a millisecond apart): an upper bound, never fewer than the truth."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

# The relay's lines (deliver.py).
LEARNED: Final = "for the reset X announced"  # "deliver: account A waits 2.5s for the ..."
WENT_EARLY: Final = "before the reset X announced"  # "... went 0.4s before the reset ..."


def _documents(lines: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for line in lines:
        if not line.startswith(b"{"):
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            yield doc


def reset_learned_at(lines: Iterable[bytes]) -> dict[str, list[float]]:
    """Account -> the epoch seconds the relay learned a reset of it, in order."""
    learned: dict[str, list[float]] = defaultdict(list)
    for doc in _documents(lines):
        message = doc["message"]
        if message.startswith("deliver: account ") and LEARNED in message and "account" in doc:
            stamp = datetime.strptime(doc["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            learned[str(doc["account"])].append(stamp.timestamp())
    for moments in learned.values():
        moments.sort()
    return dict(learned)


def sent_before_reset(lines: Iterable[bytes]) -> int:
    """Requests the relay says went after it had learned X's reset, before it."""
    return sum(
        1
        for doc in _documents(lines)
        if doc["message"].startswith("deliver: a request for account ")
        and WENT_EARLY in doc["message"]
    )


def read_lines(paths: Iterable[Path | None]) -> list[bytes]:
    lines: list[bytes] = []
    for path in paths:
        if path is not None and path.exists():
            lines.extend(path.read_bytes().splitlines())
    return lines


def arrived_after_learning(
    early: Sequence[Mapping[str, Any]], learned: Mapping[str, Sequence[float]]
) -> list[Mapping[str, Any]]:
    """The early requests that arrived after the relay learned a reset X had announced by
    then (learned at or after `announced_at`, before `arrived_at`)."""
    found = []
    for request in early:
        moments = learned.get(str(request["account_id"]), ())
        first = bisect.bisect_left(moments, float(request["announced_at"]))
        if first < len(moments) and moments[first] < float(request["arrived_at"]):
            found.append(request)
    return found
