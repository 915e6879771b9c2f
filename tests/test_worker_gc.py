"""`relay run` tunes the garbage collector for its allocation pattern (bench/profile.md)."""

from __future__ import annotations

import subprocess
import sys

from relay.pipeline.worker import GC_THRESHOLDS


def test_the_worker_freezes_what_exists_at_start_and_collects_young_objects_less_often() -> None:
    # In a child: freezing the test process itself would change every other test.
    script = (
        "import gc; from relay.pipeline.worker import tune_garbage_collector;"
        "tune_garbage_collector(); print(gc.get_threshold(), gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split("\n")[0] == f"{GC_THRESHOLDS} True"
