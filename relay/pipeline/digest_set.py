"""A set of 16-byte digests kept in two flat arrays of 64-bit words: 26 to 51 bytes a key.

The delivered ledger remembers up to `RELAY_LEDGER_MAX_KEYS` (500,000) digests. As Python
ints in a `set`, each costs its object (48 bytes) and a slot of 16 bytes in a table kept at
most 60% full; here a key is its two words in a table of its own, open addressing with
linear probing, at most 5/8 full. A removal shifts the entries after it back (no
tombstones), so that lookups stay as short after a million removals as before.

Digests are hashes already: the low word is the slot, no further mixing. The one digest of
all zeros marks an empty slot, so it is remembered apart.
"""

from __future__ import annotations

import struct
from array import array
from typing import Final

DIGEST_BYTES: Final = 16
MIN_CAPACITY: Final = 1024  # slots; a power of two
# A table that outgrows this many slots takes its full size (`max_keys`) at once: a busy set
# then rehashes ~40,000 keys once (tens of ms) instead of 330,000 at its last doubling
# (~200 ms, the event loop stalled meanwhile), and an idle one stays small.
FULL_SIZE_AT: Final = 65_536
_WORDS: Final = struct.Struct(">QQ")


def _words(capacity: int) -> array[int]:
    return array("Q", bytes(8 * capacity))


def _size_for(slots: int) -> int:
    size = MIN_CAPACITY
    while size < slots:
        size *= 2
    return size


class DigestSet:
    """`add`, `discard`, `in` and `len` of 16-byte digests, exactly (never a false hit)."""

    __slots__ = ("_count", "_full_size", "_hi", "_limit", "_lo", "_mask", "_zero")

    def __init__(self, capacity: int = MIN_CAPACITY, *, max_keys: int = 0) -> None:
        """`max_keys`: how many keys it holds at most, when known (the size it jumps to)."""
        self._full_size = _size_for(max_keys * 8 // 5 + 1) if max_keys else 0
        self._resize(_size_for(capacity))
        self._count = 0
        self._zero = False  # the all-zero digest, which cannot have a slot

    def _resize(self, size: int) -> None:
        self._hi = _words(size)
        self._lo = _words(size)
        self._mask = size - 1
        self._limit = size * 5 // 8

    @property
    def capacity(self) -> int:
        return self._mask + 1

    def __len__(self) -> int:
        return self._count + self._zero

    def __contains__(self, digest: bytes) -> bool:
        hi, lo = _WORDS.unpack(digest)
        if not (hi or lo):
            return self._zero
        his, los, mask = self._hi, self._lo, self._mask
        slot = lo & mask
        while True:
            found = los[slot]
            if found == lo and his[slot] == hi:
                return True
            if not found and not his[slot]:
                return False
            slot = (slot + 1) & mask

    def add(self, digest: bytes) -> None:
        self._add(*_WORDS.unpack(digest))

    def update(self, digests: bytes | bytearray) -> None:
        """Add each of the 16-byte digests written end to end in `digests`."""
        # `_add` inlined: this runs once per delivered event.
        count = len(digests) // DIGEST_BYTES
        if self._count + count >= self._limit:
            while self._count + count >= self._limit:
                self._grow()
        his, los, mask = self._hi, self._lo, self._mask
        added = 0
        for hi, lo in _WORDS.iter_unpack(digests):
            if not (hi or lo):
                self._zero = True
                continue
            slot = lo & mask
            while True:
                found_lo = los[slot]
                if not found_lo and not his[slot]:
                    his[slot] = hi
                    los[slot] = lo
                    added += 1
                    break
                if found_lo == lo and his[slot] == hi:
                    break
                slot = (slot + 1) & mask
        self._count += added

    def _add(self, hi: int, lo: int) -> None:
        if not (hi or lo):
            self._zero = True
            return
        if self._count >= self._limit:
            self._grow()
        self._insert(hi, lo)

    def _insert(self, hi: int, lo: int) -> None:
        his, los, mask = self._hi, self._lo, self._mask
        slot = lo & mask
        while True:
            found_lo, found_hi = los[slot], his[slot]
            if not (found_lo or found_hi):
                his[slot], los[slot] = hi, lo
                self._count += 1
                return
            if found_lo == lo and found_hi == hi:
                return
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        his, los = self._hi, self._lo
        size = 2 * (self._mask + 1)
        if size > FULL_SIZE_AT and self._full_size > size:
            size = self._full_size
        self._resize(size)
        self._count = 0
        for hi, lo in zip(his, los, strict=True):
            if hi or lo:
                self._insert(hi, lo)

    def discard(self, digest: bytes) -> None:
        self._discard(*_WORDS.unpack(digest))

    def difference_update(self, digests: bytes | bytearray) -> None:
        """Discard each of the 16-byte digests written end to end in `digests`."""
        discard = self._discard
        for hi, lo in _WORDS.iter_unpack(digests):
            discard(hi, lo)

    def _discard(self, hi: int, lo: int) -> None:
        if not (hi or lo):
            self._zero = False
            return
        his, los, mask = self._hi, self._lo, self._mask
        slot = lo & mask
        while True:
            found = los[slot]
            if found == lo and his[slot] == hi:
                break
            if not found and not his[slot]:
                return  # not there
            slot = (slot + 1) & mask
        self._count -= 1
        # Backward shift: an entry after the hole moves into it unless its home slot lies
        # between the hole and itself (then a lookup from its home still reaches it).
        hole = slot
        while True:
            his[hole] = los[hole] = 0
            later = hole
            while True:
                later = (later + 1) & mask
                moving_lo, moving_hi = los[later], his[later]
                if not (moving_lo or moving_hi):
                    return
                home = moving_lo & mask
                stays = hole < home <= later if hole < later else home > hole or home <= later
                if not stays:
                    his[hole], los[hole] = moving_hi, moving_lo
                    hole = later
                    break
