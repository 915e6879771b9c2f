"""Per-account token bucket (cost = events), a pure function of an injected clock.

Not aiolimiter: the relay needs a bucket that starts empty (a new owner of an account cannot
know what the previous one spent), that X's rate-limit headers and 429s can override, and
that tests drive with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    """`limit` events per `window_s`, refilled continuously; `reserve` says how long to wait."""

    limit: int
    window_s: float
    clock: Clock = time.monotonic
    start_full: bool = False
    tokens: float = field(init=False)
    _updated_at: float = field(init=False)
    _blocked_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.window_s <= 0:
            raise ValueError("a token bucket needs a positive limit and window")
        self.tokens = float(self.limit) if self.start_full else 0.0
        self._updated_at = self.clock()

    @property
    def rate_per_s(self) -> float:
        return self.limit / self.window_s

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated_at
        if elapsed > 0:
            self.tokens = min(float(self.limit), self.tokens + elapsed * self.rate_per_s)
            self._updated_at = now

    def wait_time(self, cost: int) -> float:
        """Seconds until `cost` tokens are available (0 when they are now)."""
        if cost > self.limit:
            raise ValueError(f"cost {cost} exceeds the bucket's limit {self.limit}")
        now = self.clock()
        self._refill(now)
        blocked = max(0.0, self._blocked_until - now)
        missing = cost - self.tokens
        refill_wait = missing / self.rate_per_s if missing > 0 else 0.0
        return max(blocked, refill_wait)

    def take(self, cost: int) -> bool:
        """Take `cost` tokens if available now."""
        if self.wait_time(cost) > 0:
            return False
        self.tokens -= cost
        return True

    def observe_server(self, remaining: int | None, reset_in_s: float | None) -> None:
        """X's view wins: never hold more than X says remains; at zero, wait for the reset."""
        now = self.clock()
        self._refill(now)
        if remaining is not None:
            self.tokens = min(self.tokens, float(max(remaining, 0)))
            if remaining <= 0 and reset_in_s is not None:
                self.block_for(reset_in_s)

    def block_for(self, seconds: float) -> None:
        """Spend nothing until `seconds` from now (a 429 or an exhausted server budget)."""
        now = self.clock()
        self._refill(now)
        self.tokens = 0.0
        self._blocked_until = max(self._blocked_until, now + max(seconds, 0.0))
