"""What the C allocator frees goes back to the system (glibc only): large blocks when they
are freed (`map_large_blocks`), the heap's free pages every so often (`trim_heap`).

glibc serves a block of 128 KiB or more with its own mapping, returned when freed, until a
large block is freed: then it raises that threshold to the block's size (up to 32 MiB), and
later large blocks come from the heap. The worker's large blocks are Kafka fetch answers
and producer batches (MiBs each, briefly alive), so once the threshold rose they land in
the heap between small long-lived objects, and the heap cannot shrink around them: about
30 MB of peak RSS with 10,000 accounts behind (measured, `relay bench memory`). Setting the
threshold once fixes it at glibc's own starting value and turns that raise off.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable
from typing import Final, cast

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES: Final = 128 * 1024  # glibc's default before any raise


def map_large_blocks() -> bool:
    """Fix glibc's mapping threshold at its default; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to fix
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done: bool = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; the allocator keeps its defaults")
    return done


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Give the free pages inside the heap back to the system (glibc's `malloc_trim`);
    False where there is no glibc.

    Freed blocks below the heap's top stay resident: the heap shrinks only from its top,
    and over a backlog its top is always in use. Records of 0.5 to 1 KB (above Python's own
    allocator, below the mapping threshold) come and go by the ten thousand, so the heap
    holds tens of MB it does not use (measured, `relay bench memory`)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def trim_heap_every(interval_s: float) -> None:
    """`trim_heap` every `interval_s` until cancelled (a few ms each, in the loop)."""
    if not trim_heap():
        return  # nothing to trim with here
    while True:
        await asyncio.sleep(interval_s)
        trim_heap()
