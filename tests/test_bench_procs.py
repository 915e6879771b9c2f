"""`tree_usage`: what the bench reads of a process from /proc, here of real child processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay.tools.bench.procs import Usage, tree_usage

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc only")

# Touches `megabytes` of fresh memory, then waits for a line on stdin (measured meanwhile).
CHILD = """
import mmap, sys
block = mmap.mmap(-1, int(sys.argv[1]) << 20)  # zero pages: each is faulted in when written
if hasattr(mmap, "MADV_NOHUGEPAGE"):
    block.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB pages, whatever the kernel's default
for at in range(0, len(block), 4096):
    block[at] = 1
print("ready", flush=True)
sys.stdin.readline()
"""


def _usage_of_child(megabytes: int) -> Usage:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(megabytes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        usage = tree_usage(child.pid)
    finally:
        child.communicate("\n", timeout=60)
    assert usage is not None
    return usage


def test_fresh_memory_shows_as_minor_faults_and_rss() -> None:
    small, large = _usage_of_child(1), _usage_of_child(128)
    # 127 MiB more touched: 32,512 more pages of 4 KiB
    assert large.minor_faults - small.minor_faults > 30_000
    assert large.peak_rss_bytes - small.peak_rss_bytes > 100 << 20
    assert large.minor_faults > small.minor_faults > 0
    assert 0 <= large.system_s <= large.cpu_s


def test_usages_add_up() -> None:
    total = Usage(1.0, 10, 0.25, 7) + Usage(2.0, 20, 0.5, 3)
    assert total == Usage(3.0, 30, 0.75, 10)
