"""The ledger's digest set answers exactly as a Python set of the same digests does."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.pipeline.digest_set import FULL_SIZE_AT, MIN_CAPACITY, DigestSet


def digest(hi: int, lo: int) -> bytes:
    return struct.pack(">QQ", hi, lo)


def test_added_digests_are_in_it_and_others_are_not() -> None:
    keys = DigestSet()
    keys.add(digest(1, 2))
    keys.add(digest(1, 2))  # twice: one key
    assert digest(1, 2) in keys and len(keys) == 1
    assert digest(2, 1) not in keys and digest(1, 3) not in keys
    assert digest(0, 2) not in keys  # one word alike is not the key


def test_the_all_zero_digest_is_a_key_like_any_other() -> None:
    keys = DigestSet()
    assert digest(0, 0) not in keys
    keys.add(digest(0, 0))
    assert digest(0, 0) in keys and len(keys) == 1
    keys.discard(digest(0, 0))
    assert digest(0, 0) not in keys and len(keys) == 0


def test_a_removal_keeps_the_keys_probed_past_it_reachable() -> None:
    """Keys of one home slot and the next, wrapping around the end of the table."""
    keys = DigestSet()
    last = MIN_CAPACITY - 1
    crowded = [digest(n, last) for n in range(1, 5)] + [digest(n, 0) for n in range(1, 4)]
    for key in crowded:
        keys.add(key)
    for gone in (crowded[0], crowded[4], crowded[2]):
        keys.discard(gone)
        crowded.remove(gone)
        assert all(key in keys for key in crowded)
        assert gone not in keys
    assert len(keys) == len(crowded)


def test_it_grows_and_forgets_nothing() -> None:
    rng = random.Random(7)
    keys = DigestSet()
    added = [rng.randbytes(16) for _ in range(5 * MIN_CAPACITY)]
    for key in added:
        keys.add(key)
    assert keys.capacity >= 8 * MIN_CAPACITY
    assert len(keys) == len(set(added)) and all(key in keys for key in added)


# Few distinct low words: every key collides with others, many probe past the table's end.
words = st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 2, MIN_CAPACITY - 1, MIN_CAPACITY]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), words), max_size=200))
def test_any_sequence_of_adds_and_removals_matches_a_python_set(
    steps: list[tuple[bool, tuple[int, int]]],
) -> None:
    keys, expected = DigestSet(), set()
    for adding, (hi, lo) in steps:
        key = digest(hi, lo)
        if adding:
            keys.add(key)
            expected.add(key)
        else:
            keys.discard(key)
            expected.discard(key)
        assert len(keys) == len(expected)
    universe = {digest(hi, lo) for hi in range(4) for lo in (0, 1, 2, 3, MIN_CAPACITY - 1)}
    assert {key for key in universe | expected if key in keys} == expected


def test_digests_written_end_to_end_go_in_and_out_together() -> None:
    keys = DigestSet()
    run = bytearray(digest(1, 5) + digest(2, 5) + digest(0, 0))
    keys.update(run)
    assert len(keys) == 3 and digest(2, 5) in keys and digest(0, 0) in keys
    keys.difference_update(run[:16])
    assert digest(1, 5) not in keys and digest(2, 5) in keys and len(keys) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(words, max_size=40), max_size=20))
def test_runs_added_together_match_a_python_set(runs: list[list[tuple[int, int]]]) -> None:
    keys, expected = DigestSet(), set[bytes]()
    for run in runs:  # repeats within a run and across runs, the zero digest, collisions
        keys.update(b"".join(digest(hi, lo) for hi, lo in run))
        expected.update(digest(hi, lo) for hi, lo in run)
        assert len(keys) == len(expected)
    universe = {digest(hi, lo) for hi in range(4) for lo in (0, 1, 2, 3, MIN_CAPACITY - 1)}
    assert {key for key in universe | expected if key in keys} == expected


def test_a_run_larger_than_the_table_grows_it_first() -> None:
    rng = random.Random(11)
    keys = DigestSet()
    added = [rng.randbytes(16) for _ in range(3 * MIN_CAPACITY)]
    keys.update(b"".join(added[:16]))
    keys.update(b"".join(added))  # more than the table holds, some already in it
    assert keys.capacity >= 4 * MIN_CAPACITY
    assert len(keys) == len(added) and all(key in keys for key in added)


def test_a_set_that_outgrows_the_early_sizes_takes_its_full_size_at_once() -> None:
    rng = random.Random(5)
    keys = DigestSet(max_keys=100_000)
    added = [rng.randbytes(16) for _ in range(FULL_SIZE_AT * 5 // 8 + 1)]
    keys.update(b"".join(added[: FULL_SIZE_AT // 2]))
    assert keys.capacity == FULL_SIZE_AT  # doubling so far
    keys.update(b"".join(added[FULL_SIZE_AT // 2 :]))
    assert keys.capacity >= 100_000 * 8 // 5  # the cap's keys fit, with room: no more doubling
    assert all(key in keys for key in added)
    assert DigestSet().capacity == MIN_CAPACITY  # nothing known: it grows as before
