"""OAuth 1.0a freshness and replay protection (RFC 5849 3.3), as X enforces them.

A signed request is refused when its `oauth_timestamp` is further than `window_s` from the
sandbox's clock, or when the same consumer key, token, nonce and timestamp were already
seen: a captured request cannot be sent again. A nonce is remembered only as long as its
timestamp could still pass (timestamp + window), and at most `max_keys` of them, so memory
stays bounded; expiry is amortised O(1) per request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class ReplayGuard:
    """Admits each fresh (consumer key, token, nonce, timestamp) once."""

    def __init__(self, clock: Callable[[], float], window_s: float, max_keys: int):
        self._clock = clock
        self._window_s = window_s
        self._max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> forget after, oldest first

    def admit(self, consumer_key: str, token: str, nonce: str, timestamp: str) -> bool:
        """Whether the request is fresh and new; remembers it if so."""
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        signed_at = int(timestamp)
        now = self._clock()
        if abs(now - signed_at) > self._window_s:
            return False
        self._expire(now)
        key = "\x1f".join((consumer_key, token, nonce, timestamp))
        if key in self._seen:
            return False
        if len(self._seen) >= self._max_keys:
            self._seen.popitem(last=False)
        self._seen[key] = signed_at + self._window_s
        return True

    def _expire(self, now: float) -> None:
        # Insertion order is close to timestamp order; an entry stuck behind a younger one
        # only lives a little longer, and its timestamp is refused by then anyway.
        seen = self._seen
        while seen:
            key, forget_after = next(iter(seen.items()))
            if forget_after >= now:
                return
            del seen[key]

    def __len__(self) -> int:
        return len(self._seen)

    def clear(self) -> None:
        self._seen.clear()
