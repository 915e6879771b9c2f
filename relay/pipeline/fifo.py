"""A first-in first-out queue in a list and the index of its head: about 120 bytes when it
holds one item, where a `deque` costs 760 (its first block of 64 slots).

Every lane with a batch ready keeps one, and over a backlog that is 10,000 lanes at once.
Taking from the head moves the index; the taken slots are cut off once they are more than
half of the list, so that a long queue (an app lane's single requests) costs amortized
O(1) a take, as a deque does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Final, TypeVar, overload

T = TypeVar("T")

COMPACT_AFTER: Final = 16  # taken slots kept before the list is cut (and then only past half)


class Fifo(Sequence[T]):
    """`append`, `appendleft`, `extendleft`, `popleft`, `[0]`, `len`, iteration both ways."""

    __slots__ = ("_head", "_items")

    def __init__(self, items: Iterable[T] = ()) -> None:
        self._items: list[T | None] = list(items)
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __bool__(self) -> bool:
        return len(self._items) > self._head

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return list(self)[index]
        return self._items[self._slot(index)]  # type: ignore[return-value]

    def __setitem__(self, index: int, item: T) -> None:
        self._items[self._slot(index)] = item

    def _slot(self, index: int) -> int:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("Fifo index out of range")
        return self._head + index

    def __iter__(self) -> Iterator[T]:
        items = self._items
        for slot in range(self._head, len(items)):
            yield items[slot]  # type: ignore[misc]

    def __reversed__(self) -> Iterator[T]:
        items, head = self._items, self._head
        for slot in range(len(items) - 1, head - 1, -1):
            yield items[slot]  # type: ignore[misc]

    def append(self, item: T) -> None:
        self._items.append(item)

    def appendleft(self, item: T) -> None:
        if self._head:
            self._head -= 1
            self._items[self._head] = item
        else:
            self._items.insert(0, item)

    def extendleft(self, items: Iterable[T]) -> None:
        """As `deque.extendleft`: each in turn goes first (so they end up reversed)."""
        for item in items:
            self.appendleft(item)

    def popleft(self) -> T:
        items, head = self._items, self._head
        if head >= len(items):
            raise IndexError("popleft from an empty Fifo")
        item = items[head]
        items[head] = None  # the queue no longer keeps it alive
        head += 1
        if head == len(items):
            items.clear()
            head = 0
        elif head > COMPACT_AFTER and 2 * head > len(items):
            del items[:head]
            head = 0
        self._head = head
        return item  # type: ignore[return-value]
