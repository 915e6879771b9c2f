"""Per-account token bucket (cost = events), a pure function of an injected clock.

Two regimes:
- Before X said anything (a new owner of the account): the bucket starts empty and refills
  continuously at limit/window, so a new owner can never overspend what the last one left.
- Once X's headers came back (`observe_server`): X's window wins. The tokens are what X says
  remain, less what is in flight; nothing refills until X's reset time, when the bucket holds
  X's `limit` again. A batch is never larger than what remains (see `available`).

Tokens are taken before a request (`take`) and given back (`refund`) for what X did not count:
a 400 split, a 5xx, a timeout, fewer `conversions_processed` than sent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

Clock = Callable[[], float]
WallClock = Callable[[], float]
# X's reset is whole epoch seconds and our clock may run a little ahead of X's.
RESET_MARGIN_S: Final = 0.25


@dataclass
class TokenBucket:
    """`limit` events per `window_s`; `wait_time` says how long until `cost` is available."""

    limit: int
    window_s: float
    clock: Clock = time.monotonic
    start_full: bool = False
    wall_clock: WallClock = time.time
    tokens: float = field(init=False)
    in_flight: int = field(init=False, default=0)
    server_known: bool = field(init=False, default=False)
    last_used: float = field(init=False)
    _updated_at: float = field(init=False)
    _blocked_until: float = field(init=False, default=0.0)
    _reset_at: float | None = field(init=False, default=None)  # monotonic, server regime
    _reset_epoch: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.window_s <= 0:
            raise ValueError("a token bucket needs a positive limit and window")
        self.tokens = float(self.limit) if self.start_full else 0.0
        self._updated_at = self.last_used = self.clock()

    @property
    def rate_per_s(self) -> float:
        return self.limit / self.window_s

    def _refill(self, now: float) -> None:
        if self._reset_at is not None:
            if now >= self._reset_at:  # X's window turned: its whole limit again, no more
                # until the next window (X's next answer tells its exact end).
                while self._reset_at <= now:
                    self._reset_at += self.window_s
                self.tokens = float(max(self.limit - self.in_flight, 0))
                self._updated_at = now
            return
        elapsed = now - self._updated_at
        if elapsed > 0:
            self.tokens = min(float(self.limit), self.tokens + elapsed * self.rate_per_s)
            self._updated_at = now

    def available(self) -> int:
        """Whole tokens usable now (0 while blocked): the largest batch that may go."""
        now = self.clock()
        self._refill(now)
        if self._blocked_until > now:
            return 0
        return max(0, math.floor(self.tokens))

    def wait_time(self, cost: int) -> float:
        """Seconds until `cost` tokens are available (0 when they are now)."""
        if cost > self.limit:
            raise ValueError(f"cost {cost} exceeds the bucket's limit {self.limit}")
        now = self.clock()
        self._refill(now)
        blocked = max(0.0, self._blocked_until - now)
        missing = cost - self.tokens
        if missing <= 0:
            return blocked
        if self._reset_at is not None:  # X's window: nothing comes back before its reset
            return max(blocked, self._reset_at - now)
        return max(blocked, missing / self.rate_per_s)

    def take(self, cost: int) -> bool:
        """Take `cost` tokens if available now; they count as in flight until `settle`."""
        if self.wait_time(cost) > 0:
            return False
        self.tokens -= cost
        self.in_flight += cost
        self.last_used = self.clock()
        return True

    def settle(self, cost: int, *, counted: int) -> None:
        """A request of `cost` tokens is over; X counted `counted` of them: refund the rest."""
        self.in_flight = max(0, self.in_flight - cost)
        self.refund(cost - counted)

    def refund(self, count: int) -> None:
        if count > 0:
            self._refill(self.clock())
            self.tokens = min(float(self.limit), self.tokens + count)

    def observe_server(
        self,
        remaining: int | None,
        reset_in_s: float | None,
        limit: int | None = None,
        *,
        in_flight_other: int | None = None,
    ) -> None:
        """X's view wins: its limit, what remains (less what is still in flight), its reset."""
        now = self.clock()
        self._refill(now)
        if limit is not None and limit > 0:
            self.limit = limit
        if remaining is None:
            return
        if remaining <= 0 and reset_in_s is not None:
            # Spent, or a 429 with its own reset (X may announce one before its window's end):
            # nothing before that reset, whatever the window.
            self.block_for(reset_in_s + RESET_MARGIN_S)
        if reset_in_s is not None:
            reset_epoch = self.wall_clock() + reset_in_s
            if reset_epoch < self._reset_epoch - 1.0:
                return  # an answer from X's previous window, overtaken by a newer one
            self._reset_epoch = max(self._reset_epoch, reset_epoch)
            self._reset_at = now + max(reset_in_s, 0.0) + RESET_MARGIN_S
        pending = self.in_flight if in_flight_other is None else in_flight_other
        self.tokens = float(max(remaining - pending, 0))
        self.server_known = True
        self._updated_at = now

    def block_for(self, seconds: float) -> None:
        """Spend nothing until `seconds` from now (a 429 or an exhausted server budget).

        Inside X's window the tokens stay what X said (its headers set them to 0 when the
        budget is spent); before X said anything, the bucket starts over from empty.
        """
        now = self.clock()
        self._refill(now)
        if self._reset_at is None:
            self.tokens = 0.0
        self._blocked_until = max(self._blocked_until, now + max(seconds, 0.0))

    @property
    def blocked_until(self) -> float:
        """The clock's time before which nothing may be spent (a 429's reset, say)."""
        return self._blocked_until

    def blocked_for(self) -> float:
        return max(0.0, self._blocked_until - self.clock())
