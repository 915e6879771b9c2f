"""CPU per record of the ingest stage's own work (decode, adapt, encode, offsets, counters),
in process, with no broker: `IngestStage.handle` over 1,000 generated records, 300 times,
the fastest batch kept. Caches are warm (repeated phones hit the LRU), so this is the
stage's Python work without the phone parser; the minimum filters out a shared machine.

    python scripts/perf/ingest_handle.py --format web [--code DIR]

`--code DIR` measures another checkout (run with PYTHONPATH=DIR in a child process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HMAC_KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="  # a test key, base64
RECORDS = 1000
BATCHES = 300


class DiscardingProducer:
    """Takes the records and acknowledges at once: only the stage's own work is timed."""

    async def send_many(self, records: Iterable[Any]) -> list[asyncio.Future[None]]:
        list(records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return [done]


def settings_for(fmt: str) -> Any:
    from relay.config import load_settings

    mapping = Path(__file__).resolve().parents[2] / "relay" / "data" / "defaults.toml"
    return load_settings(
        {
            "RELAY_CONFIG": str(mapping),
            "RELAY_INPUTS": f"in={fmt}",
            "RELAY_DEVICE_ID_HMAC_KEY": HMAC_KEY,
        }
    )


def records_of(fmt: str) -> list[bytes]:
    from relay.tools.produce import generate

    return [s.value for s in generate(fmt, RECORDS, settings_for(fmt).mapping, seed=3)]


async def measure(fmt: str, values: list[bytes]) -> float:
    from aiokafka import ConsumerRecord, TopicPartition

    from relay.observability.metrics import Metrics
    from relay.pipeline.ingest import IngestStage
    from relay.pipeline.offsets import OffsetTracker

    settings = settings_for(fmt)
    batch: dict[Any, list[Any]] = {}
    for offset, value in enumerate(values):
        record = ConsumerRecord(
            "in", offset % 8, offset, 1_700_000_000_000, 0, b"k", value, None, 1, len(value), ()
        )
        batch.setdefault(TopicPartition("in", offset % 8), []).append(record)
    stage = IngestStage(settings, DiscardingProducer(), Metrics())  # type: ignore[arg-type]
    best = float("inf")
    for _ in range(BATCHES):
        stage.tracker = OffsetTracker()
        started = time.perf_counter()
        await stage.handle(batch)
        await stage.drain(5)
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / RECORDS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", default="web")
    parser.add_argument("--code", help="measure this checkout")
    parser.add_argument("--label", default="run")
    parser.add_argument("--records", help=argparse.SUPPRESS)  # JSON lines, from the parent
    args = parser.parse_args()
    if args.code:  # the same records (this checkout's generator), the other code
        with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as feed:
            feed.write(b"\n".join(records_of(args.format)))
            feed.flush()
            env = {**os.environ, "PYTHONPATH": args.code}
            command = [sys.executable, __file__, "--format", args.format, "--label", args.label]
            subprocess.run([*command, "--records", feed.name], env=env, cwd="/", check=True)
        return
    if args.records:
        values = Path(args.records).read_bytes().split(b"\n")
    else:
        values = records_of(args.format)
    us = asyncio.run(measure(args.format, values))
    print(f"{args.label} {args.format}: {us:.2f} us per record (stage work, caches warm)")


if __name__ == "__main__":
    main()
