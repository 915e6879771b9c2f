"""X's budgets: events per ad account and requests per user token, in fixed windows.

Windows are fixed and aligned to the epoch (window k covers [k*w, (k+1)*w)): every caller
of one key sees the same reset time and nothing needs a timer. X may count differently
(sliding windows); the relay relies only on the headers: `*-limit`, `*-remaining` and
`*-reset` (Unix epoch seconds of the window's end). A spend that does not fit is refused
whole, so a request is either counted and served or refused (429) with nothing recorded.
Each spend or look-up is O(1); keys are the configured accounts and tokens, so they stay few.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, NamedTuple

from relay.sandbox.responses import XApiError

ACCOUNT_PREFIX: Final = "x-account-rate-limit-"
TOKEN_PREFIX: Final = "x-rate-limit-"
TOO_MANY_REQUESTS: Final = "TOO_MANY_REQUESTS"


class BudgetState(NamedTuple):
    """What the headers tell: the window's budget, what is left, when it resets. (A tuple:
    one is made for every answer.)"""

    limit: int
    remaining: int
    reset_epoch_s: int

    def headers(self, prefix: str) -> dict[str, str]:
        limit, remaining, reset = _HEADER_NAMES.get(prefix) or _header_names(prefix)
        return {
            limit: str(self.limit),
            remaining: str(self.remaining),
            reset: str(self.reset_epoch_s),
        }


_HEADER_NAMES: Final[dict[str, tuple[str, str, str]]] = {}


def _header_names(prefix: str) -> tuple[str, str, str]:
    names = _HEADER_NAMES[prefix] = (prefix + "limit", prefix + "remaining", prefix + "reset")
    return names


class FixedWindowBudget:
    """`limit` units per `window_s` seconds for each key."""

    def __init__(self, limit: int, window_s: float):
        if limit <= 0 or window_s <= 0:
            raise ValueError("a budget needs a positive limit and window")
        self.limit = limit
        self._limit_text = str(limit)
        self.window_s = window_s
        self._used: dict[str, tuple[int, int]] = {}  # key -> (window index, units used)
        self._reset: tuple[int, int] = (-1, 0)  # the last window asked about, its reset

    def _window(self, now: float) -> int:
        return math.floor(now / self.window_s)

    def _state(self, window: int, used: int) -> BudgetState:
        known, reset = self._reset
        if known != window:
            reset = math.ceil((window + 1) * self.window_s)
            self._reset = (window, reset)
        return BudgetState(self.limit, max(self.limit - used, 0), reset)

    def _used_in(self, key: str, window: int) -> int:
        seen = self._used.get(key)
        return seen[1] if seen is not None and seen[0] == window else 0

    def peek(self, key: str, now: float) -> BudgetState:
        window = self._window(now)
        return self._state(window, self._used_in(key, window))

    def header_values(self, key: str, now: float) -> tuple[str, str, str]:
        """`peek(key, now)`'s limit, remaining and reset as header values, without the
        state."""
        window = self._window(now)
        reset = self._reset[1] if self._reset[0] == window else self._state(window, 0)[2]
        return self._limit_text, str(max(self.limit - self._used_in(key, window), 0)), str(reset)

    def take(self, key: str, cost: int, now: float) -> bool:
        """`spend`, without the state after it."""
        window = self._window(now)
        used = self._used_in(key, window) + cost
        if used > self.limit:
            return False
        self._used[key] = (window, used)
        return True

    def room(self, key: str, now: float) -> int:
        """How many units are left for `key` in the window of `now` (`peek` without the
        state's reset)."""
        return self.limit - self._used_in(key, self._window(now))

    def spend(self, key: str, cost: int, now: float) -> tuple[bool, BudgetState]:
        """Spends `cost` if it fits in what is left of the window; (spent?, state after)."""
        window = self._window(now)
        used = self._used_in(key, window)
        if used + cost > self.limit:
            return False, self._state(window, used)
        self._used[key] = (window, used + cost)
        return True, self._state(window, used + cost)

    def refund(self, key: str, cost: int, now: float) -> None:
        """Gives `cost` back, unless its window is over (a new window starts full anyway)."""
        window = self._window(now)
        used = self._used_in(key, window)
        if used:
            self._used[key] = (window, max(used - cost, 0))

    def clear(self) -> None:
        self._used.clear()


def too_many_requests(params: Mapping[str, str] | None = None) -> XApiError:
    return XApiError.single(429, TOO_MANY_REQUESTS, "Rate limit exceeded", params=params)
