"""The C allocator's large blocks go back to the system when freed (glibc only).

glibc serves a block of 128 KiB or more with its own mapping, returned when freed, until a
large block is freed: then it raises that threshold to the block's size (up to 32 MiB), and
later large blocks come from the heap. The worker's large blocks are Kafka fetch answers
and producer batches (MiBs each, briefly alive), so once the threshold rose they land in
the heap between small long-lived objects, and the heap cannot shrink around them: about
30 MB of peak RSS with 10,000 accounts behind (measured, `relay bench memory`). Setting the
threshold once fixes it at glibc's own starting value and turns that raise off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from typing import Final

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
