"""Backoff with full jitter."""

from __future__ import annotations

import random
from typing import Final

BASE_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 60.0


def full_jitter_delay(
    attempt: int,
    *,
    base_s: float = BASE_DELAY_S,
    cap_s: float = MAX_DELAY_S,
    rng: random.Random | None = None,
) -> float:
    """A random delay in [0, min(cap, base * 2**(attempt-1))] (attempt counts from 1)."""
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0, ceiling)
