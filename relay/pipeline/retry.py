"""Backoff with full jitter. The base and cap come from the settings (`RELAY_RETRY_*_S`)."""

from __future__ import annotations

import random


def full_jitter_delay(
    attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """A random delay in [0, min(cap, base * 2**(attempt-1))] (attempt counts from 1)."""
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0, ceiling)
