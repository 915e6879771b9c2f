"""`map_large_blocks`: after a large block was freed, a 1 MiB block is still its own mapping
(glibc would serve it from the heap, where it fragments what cannot shrink)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    from relay.allocator import map_large_blocks
    assert map_large_blocks()
big = bytearray(8 << 20)
del big  # a large block freed: glibc raises its threshold to its size
before = libc.mallinfo2().hblkhd
block = bytearray(1 << 20)
print(libc.mallinfo2().hblkhd - before)
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="glibc only")


def _mapped_growth(mode: str) -> int:
    """Bytes of mapped blocks a 1 MiB allocation added, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout.strip())


def test_glibc_alone_serves_the_block_from_the_heap() -> None:
    assert _mapped_growth("default") == 0  # the behaviour the fix is for


def test_with_the_fix_the_block_is_mapped() -> None:
    assert _mapped_growth("fixed") >= 1 << 20


TRIM_PROBE = """
import sys
def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
blocks = [bytes(1000) for _ in range(100_000)]  # 100 MB of heap blocks (above pymalloc's)
top = blocks[-1]  # kept: the heap cannot shrink from its top
del blocks
before = rss_mb()
if sys.argv[1] == "trim":
    from relay.allocator import trim_heap
    assert trim_heap()
print(before - rss_mb())
"""


def _rss_given_back_mb(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", TRIM_PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(done.stdout.strip())


def test_freed_blocks_below_the_heap_s_top_stay_resident_without_a_trim() -> None:
    assert _rss_given_back_mb("none") < 20  # the behaviour trim_heap is for


def test_trim_heap_gives_them_back() -> None:
    assert _rss_given_back_mb("trim") > 50
