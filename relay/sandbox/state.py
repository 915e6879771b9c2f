"""The sandbox's memory: the journals of accepted conversions (web and app), X's dedup,
the budgets, the OAuth nonces, the engagements, the faults in force, and counters.

Everything here is bounded: each journal keeps at most `journal_max_entries` conversions
(oldest dropped first, counters keep counting), the dedup memory at most `dedup_max_keys`
keys and none older than X's 48 h window. Time comes from an injected clock.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from relay.sandbox.access import Access
from relay.sandbox.attribution import Engagements
from relay.sandbox.config import SandboxApp, SandboxConfig, SandboxPixel
from relay.sandbox.faults import FaultInjector
from relay.sandbox.limits import FixedWindowBudget, too_many_requests
from relay.sandbox.replay import ReplayGuard

Clock = Callable[[], float]  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class JournalBatch:
    """One accepted request. The body is kept as received (compact bytes, no copies);
    entries are built from it only when someone reads the journal."""

    pixel_id: str
    account_id: str
    debug_id: str
    received_at: float  # epoch seconds: formatted only when someone reads the journal
    auth: str
    body: bytes
    duplicates: Sequence[bool]


class Journal:
    """Accepted conversions in arrival order, at most `max_entries` of them."""

    def __init__(self, max_entries: int):
        self._max = max_entries
        self._batches: deque[JournalBatch] = deque()
        self._head_skip = 0  # entries already dropped from the oldest batch
        self.retained = 0
        self.dropped = 0

    def append(self, batch: JournalBatch) -> None:
        self._batches.append(batch)
        self.retained += len(batch.duplicates)
        excess = self.retained - self._max
        while excess > 0:
            head = self._batches[0]
            left = len(head.duplicates) - self._head_skip
            if left <= excess:
                self._batches.popleft()
                self._head_skip = 0
            else:
                self._head_skip += excess
            taken = min(left, excess)
            excess -= taken
            self.retained -= taken
            self.dropped += taken

    def page(
        self, *, pixel_id: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """(entries offset..offset+limit of those matching, how many match in all)."""
        entries: list[dict[str, Any]] = []
        total = 0
        for index, batch in enumerate(self._batches):
            if pixel_id is not None and batch.pixel_id != pixel_id:
                continue
            first = self._head_skip if index == 0 else 0
            count = len(batch.duplicates) - first
            start = max(offset - total, 0)
            stop = count if limit is None else min(count, offset + limit - total)
            if start < stop:
                conversions = orjson.loads(batch.body)["conversions"]
                received_at = iso_ms(batch.received_at)  # once: the whole batch shares it
                entries.extend(
                    _entry(batch, received_at, conversions[first + i], batch.duplicates[first + i])
                    for i in range(start, stop)
                )
            total += count
        return entries, total

    def clear(self) -> None:
        self._batches.clear()
        self._head_skip = self.retained = self.dropped = 0


def _entry(
    batch: JournalBatch, received_at: str, conversion: Any, duplicate: bool
) -> dict[str, Any]:
    return {
        "pixel_id": batch.pixel_id,
        "account_id": batch.account_id,
        "debug_id": batch.debug_id,
        "received_at": received_at,
        "auth": batch.auth,
        "duplicate": duplicate,
        "conversion": conversion,
    }


class AppJournal:
    """Accepted app conversions (one per request) in arrival order, at most `max_entries`."""

    def __init__(self, max_entries: int):
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self.dropped = 0

    @property
    def retained(self) -> int:
        return len(self._entries)

    def append(self, entry: dict[str, Any]) -> None:
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._entries.append(entry)

    def page(
        self, *, app_id: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """(entries offset..offset+limit of those matching, how many match in all)."""
        matching = [e for e in self._entries if app_id is None or e["app_id"] == app_id]
        stop = None if limit is None else offset + limit
        shown = [{**e, "received_at": iso_ms(e["received_at"])} for e in matching[offset:stop]]
        return shown, len(matching)

    def clear(self) -> None:
        self._entries.clear()
        self.dropped = 0


class SeenConversions:
    """X's dedup: the same pixel + event + conversion_id within the window counts once."""

    def __init__(self, window_s: float, max_keys: int):
        self._window_s = window_s
        self._max_keys = max_keys
        # A dict and its keys in a deque, oldest first: cheaper per key than an OrderedDict,
        # and the front stays O(1) however many keys went before.
        self._first_seen: dict[str, float] = {}
        self._order: deque[str] = deque()

    def expire(self, now: float) -> None:
        """Forget the keys first seen a whole window before `now`."""
        first_seen, order = self._first_seen, self._order
        while order and now - first_seen[order[0]] >= self._window_s:
            del first_seen[order.popleft()]

    def is_duplicate(self, key: str, now: float) -> bool:
        """Whether `key` was seen within the window; remembers it from `now` if not."""
        return self.duplicates("", (key,), now)[0]

    def duplicates(self, prefix: str, keys: Sequence[str | None], now: float) -> list[bool]:
        """`is_duplicate(prefix + key)` for each key of a request in turn (None: no key,
        never a duplicate)."""
        first_seen, order, max_keys = self._first_seen, self._order, self._max_keys
        if None not in keys:
            # The usual requests, set-wise: every key new, none repeated, room for all; or
            # every key seen before (a request sent again).
            known_keys = cast("Sequence[str]", keys)
            prefixed = [prefix + key for key in known_keys] if prefix else known_keys
            fresh = dict.fromkeys(prefixed, now)  # also tells whether any repeats
            known = first_seen.keys()
            if (
                len(fresh) == len(prefixed)
                and len(first_seen) + len(fresh) <= max_keys
                and known.isdisjoint(fresh)
            ):
                first_seen.update(fresh)
                order.extend(prefixed)
                return [False] * len(prefixed)
            if known >= fresh.keys():
                return [True] * len(prefixed)
        found = []
        for key in keys:
            if key is None:
                found.append(False)
                continue
            key = prefix + key
            if key in first_seen:
                found.append(True)
                continue
            if len(first_seen) >= max_keys:
                del first_seen[order.popleft()]
            first_seen[key] = now
            order.append(key)
            found.append(False)
        return found

    def clear(self) -> None:
        self._first_seen.clear()
        self._order.clear()


class Stats:
    """Counters for `GET /_sandbox/stats`."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.rejected: Counter[str] = Counter()
        self.conversions_accepted = 0
        self.duplicates = 0
        self.app_conversions_accepted = 0
        self.app_conversions_attributed = 0
        self.faults: Counter[str] = Counter()  # injected, by kind: latency, drop, error_503, ...
        # By the configured access token the request names (signed or not) and status.
        self.by_token: Counter[tuple[str, int]] = Counter()
        # Requests for an account that arrived before the reset a 429 had announced to it.
        self.requests_before_reset = 0

    def record(
        self, endpoint: str, status: int, codes: Sequence[str] = (), token: str | None = None
    ) -> None:
        self.requests[endpoint, status] += 1
        if codes:
            self.rejected.update(set(codes))
        if token is not None:
            self.by_token[token, status] += 1

    def to_json(self) -> dict[str, Any]:
        requests: dict[str, dict[str, int]] = {}
        for (endpoint, status), count in sorted(self.requests.items()):
            requests.setdefault(endpoint, {})[str(status)] = count
        by_token: dict[str, dict[str, int]] = {}
        for (token, status), count in sorted(self.by_token.items()):
            by_token.setdefault(token, {})[str(status)] = count
        return {
            "requests": requests,
            "requests_by_token": by_token,
            "conversions_accepted": self.conversions_accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "app_conversions_accepted": self.app_conversions_accepted,
            "app_conversions_attributed": self.app_conversions_attributed,
            "faults": dict(sorted(self.faults.items())),
            "requests_before_reset": self.requests_before_reset,
        }

    def clear(self) -> None:
        self.requests.clear()
        self.rejected.clear()
        self.by_token.clear()
        self.faults.clear()
        self.conversions_accepted = self.duplicates = 0
        self.app_conversions_accepted = self.app_conversions_attributed = 0
        self.requests_before_reset = 0


EARLY_KEPT = 10_000  # early requests listed (the counter counts them all)


class SandboxState:
    """Everything one sandbox app remembers; `reset` forgets it all."""

    def __init__(self, config: SandboxConfig, clock: Clock):
        self.clock = clock
        self.journal = Journal(config.journal_max_entries)
        self.app_journal = AppJournal(config.journal_max_entries)
        self.seen = SeenConversions(config.dedup_window_s, config.dedup_max_keys)
        self.stats = Stats()
        self.account_budget = FixedWindowBudget(config.account_limit, config.account_window_s)
        self.token_budget = FixedWindowBudget(config.token_limit, config.token_window_s)
        self.replay = ReplayGuard(clock, config.oauth_window_s, config.nonce_max_keys)
        self.engagements = Engagements(config.engagements, config.max_engagements)
        self.faults = FaultInjector()
        self.access = Access()  # revoked tokens, denied targets (/_sandbox/access)
        # account -> (reset of its latest 429, when the first 429 announcing it was answered)
        self.announced_reset: dict[str, tuple[float, float]] = {}
        # Requests that arrived before their account's announced reset, oldest first: when
        # they arrived and what had been announced. A request can only be faulted for what
        # its client knew when it sent it; the client's own record tells which ones were
        # sent after its 429 arrived (`relay bench faults` joins the two).
        self.early_requests: deque[dict[str, Any]] = deque(maxlen=EARLY_KEPT)
        # Valid web requests validation_fast.py accepted (not a stat: X answers the same).
        self.web_fast_requests = 0

    def announce_reset(self, account_id: str, reset_epoch_s: float, now: float) -> None:
        """A 429 told the account to wait until `reset_epoch_s`."""
        known = self.announced_reset.get(account_id)
        if known is None or known[0] != reset_epoch_s:
            self.announced_reset[account_id] = (reset_epoch_s, now)

    def check_reset(self, account_id: str, now: float) -> None:
        """Counts a request for an account that arrives before its announced reset."""
        reset, announced_at = self.announced_reset.get(account_id, (0.0, 0.0))
        if now < reset:
            self.stats.requests_before_reset += 1
            self.early_requests.append(
                {
                    "account_id": account_id,
                    "arrived_at": now,
                    "reset": reset,
                    "announced_at": announced_at,
                }
            )

    def spend_account(self, account_id: str, events: int, now: float) -> None:
        """Counts `events` against the account's budget; XApiError(429) when they do not fit."""
        if not self.account_budget.take(account_id, events, now):
            raise too_many_requests({"account_id": account_id})

    def accept(
        self, pixel: SandboxPixel, body: bytes, dedup_keys: Sequence[str | None], auth: str
    ) -> str:
        """Journal one valid request (`dedup_keys`: validation.ValidRequest's, which name the
        pixel); returns its debug_id. 429 when the account's budget cannot pay for its
        conversions: then nothing is recorded."""
        now = self.clock()
        self.spend_account(pixel.account_id, len(dedup_keys), now)
        self.seen.expire(now)
        duplicates = self.seen.duplicates("", dedup_keys, now)  # the keys name the pixel
        debug_id = str(uuid.uuid4())
        self.journal.append(
            JournalBatch(
                pixel_id=pixel.id,
                account_id=pixel.account_id,
                debug_id=debug_id,
                received_at=now,
                auth=auth,
                body=body,
                duplicates=duplicates,
            )
        )
        self.stats.conversions_accepted += len(duplicates)
        self.stats.duplicates += sum(duplicates)
        return debug_id

    def accept_app(
        self,
        app: SandboxApp,
        params: dict[str, str],
        attribution: dict[str, Any],
    ) -> None:
        """Journal one app conversion (it costs its account 1 event; 429 when spent)."""
        now = self.clock()
        self.spend_account(app.account_id, 1, now)
        self.app_journal.append(
            {
                "app_id": app.id,
                "account_id": app.account_id,
                "received_at": now,
                "params": params,
                **attribution,
            }
        )
        self.stats.app_conversions_accepted += 1
        if any(attribution.values()):
            self.stats.app_conversions_attributed += 1

    def reset(self) -> None:
        """Forget everything: journals, dedup, counters, budgets, nonces, posted engagements
        (the configured ones stay) and faults."""
        self.journal.clear()
        self.app_journal.clear()
        self.seen.clear()
        self.stats.clear()
        self.account_budget.clear()
        self.token_budget.clear()
        self.replay.clear()
        self.engagements.reset()
        self.faults.clear()
        self.access = Access()
        self.announced_reset.clear()
        self.early_requests.clear()
        self.web_fast_requests = 0


def iso_ms(epoch_s: float) -> str:
    """`2026-11-20T10:00:00.123Z`."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
