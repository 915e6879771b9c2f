"""The lanes' ready queue behaves as a `deque` does for the operations lanes use."""

from __future__ import annotations

import gc
import weakref
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.pipeline.fifo import COMPACT_AFTER, Fifo

# (operation, value): enough appends and pops to cut the list many times over.
operations = st.lists(
    st.tuples(
        st.sampled_from(["append", "appendleft", "popleft", "extendleft", "set0"]), st.integers()
    ),
    max_size=4 * COMPACT_AFTER * 3,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_any_sequence_of_operations_matches_a_deque(steps: list[tuple[str, int]]) -> None:
    fifo: Fifo[int] = Fifo()
    expected: deque[int] = deque()
    for name, value in steps:
        if name == "popleft":
            if expected:
                assert fifo.popleft() == expected.popleft()
            else:
                with pytest.raises(IndexError):
                    fifo.popleft()
        elif name == "extendleft":
            fifo.extendleft([value, value + 1])
            expected.extendleft([value, value + 1])
        elif name == "set0":
            if expected:
                fifo[0] = expected[0] = value
        else:
            getattr(fifo, name)(value)
            getattr(expected, name)(value)
        assert list(fifo) == list(expected) and len(fifo) == len(expected)
        assert list(reversed(fifo)) == list(reversed(expected))
        assert bool(fifo) == bool(expected)
        if expected:
            assert fifo[0] == expected[0] and fifo[-1] == expected[-1]


def test_a_long_queue_taken_from_the_head_does_not_keep_its_taken_slots() -> None:
    fifo = Fifo(range(10 * COMPACT_AFTER))
    for _ in range(9 * COMPACT_AFTER):
        fifo.popleft()
    assert len(fifo._items) < 4 * COMPACT_AFTER  # cut, not a list of 160 with 144 spent
    assert list(fifo) == list(range(9 * COMPACT_AFTER, 10 * COMPACT_AFTER))


class Item:
    pass


def test_a_taken_item_is_no_longer_kept_alive_by_the_queue() -> None:
    fifo = Fifo([Item(), Item()])
    taken = weakref.ref(fifo.popleft())
    gc.collect()
    assert taken() is None and len(fifo) == 1


def test_indexing_outside_the_queue_fails_as_a_deque_s_does() -> None:
    fifo = Fifo([1, 2])
    fifo.popleft()
    with pytest.raises(IndexError):
        fifo[1]
    with pytest.raises(IndexError):
        fifo[-2]
