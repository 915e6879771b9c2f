"""Synthetic input events per format, for `relay produce` (one module per format).

Each generator module has `valid(rng, now, world) -> dict` (a realistic record),
`dropped(rng, record) -> bytes` (what the relay counts and never sends: limited ad tracking,
all-zero ids, events that are no conversions) and `broken(rng, record) -> bytes` (what it
dead-letters).
"""
