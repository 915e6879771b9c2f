"""OAuth 1.0a freshness and replay protection (RFC 5849 3.3), as X enforces them.

A signed request is refused when its `oauth_timestamp` is further than `window_s` from the
sandbox's clock, or when the same consumer key, token, nonce and timestamp were already
seen: a captured request cannot be sent again. A nonce is remembered only as long as its
timestamp could still pass (timestamp + window), and at most `max_keys` of them, so memory
stays bounded; expiry is amortised O(1) per request.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable


class ReplayGuard:
    """Admits each fresh (consumer key, token, nonce, timestamp) once."""

    def __init__(self, clock: Callable[[], float], window_s: float, max_keys: int):
        self._clock = clock
        self._window_s = window_s
        self._max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> forget after, oldest first
        self._front_forget_after = math.inf  # the oldest entry's: nothing expires before it

    def admit(self, consumer_key: str, token: str, nonce: str, timestamp: str) -> bool:
        """Whether the request is fresh and new; remembers it if so."""
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        signed_at = int(timestamp)
        now = self._clock()
        if abs(now - signed_at) > self._window_s:
            return False
        if self._front_forget_after < now:
            self._expire(now)
        key = f"{consumer_key}\x1f{token}\x1f{nonce}\x1f{timestamp}"
        seen = self._seen
        if key in seen:
            return False
        if len(seen) >= self._max_keys:
            seen.popitem(last=False)
            self._front_forget_after = next(iter(seen.values()), math.inf)
        forget_after = signed_at + self._window_s
        if not seen:
            self._front_forget_after = forget_after
        seen[key] = forget_after
        return True

    def _expire(self, now: float) -> None:
        # Insertion order is close to timestamp order; an entry stuck behind a younger one
        # only lives a little longer, and its timestamp is refused by then anyway.
        seen = self._seen
        while seen:
            key, forget_after = next(iter(seen.items()))
            if forget_after >= now:
                self._front_forget_after = forget_after
                return
            del seen[key]
        self._front_forget_after = math.inf

    def __len__(self) -> int:
        return len(self._seen)

    def clear(self) -> None:
        self._seen.clear()
        self._front_forget_after = math.inf
