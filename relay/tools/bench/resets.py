"""Which requests went before the reset X announced, told apart from those already on their
way: the sandbox lists each request that arrived before its account's announced reset
(`GET /_sandbox/early-requests`); the relay's JSON log has a line for each moment it learned
an account's reset. A request is early in X's sense when it arrived after the relay had
learned that reset: it was sent knowing it. Arrival comes after sending, so this counts every
request sent after the relay learned the reset, and at worst a request sent just before that
but still on its way (never fewer than the truth)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

RESET_LEARNED: Final = "deliver: account "  # the start of the relay's line (deliver.py)
RESET_WORDS: Final = "for the reset X announced"


def reset_learned_at(lines: Iterable[bytes]) -> dict[str, list[float]]:
    """Account -> the epoch seconds the relay learned a reset of it, in order."""
    learned: dict[str, list[float]] = defaultdict(list)
    for line in lines:
        if not line.startswith(b"{"):
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        message = doc.get("message", "") if isinstance(doc, dict) else ""
        if message.startswith(RESET_LEARNED) and RESET_WORDS in message and "account" in doc:
            stamp = datetime.strptime(doc["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            learned[str(doc["account"])].append(stamp.timestamp())
    for moments in learned.values():
        moments.sort()
    return dict(learned)


def read_logs(paths: Iterable[Path | None]) -> dict[str, list[float]]:
    lines: list[bytes] = []
    for path in paths:
        if path is not None and path.exists():
            lines.extend(path.read_bytes().splitlines())
    return reset_learned_at(lines)


def sent_knowing(
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
