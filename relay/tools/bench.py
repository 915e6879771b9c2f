"""`relay bench throughput`: the web path end to end, and in the same run a Kafka floor.

Floor: the same records consumed with `getmany`, decoded with orjson and produced back with
aiokafka's batch API: the fastest way to move them through Kafka in Python, nothing else.
End to end: ingest (decode, validate, normalize, hash) -> outbound -> deliver (batch,
sign, POST to the sandbox in its own process) until the sandbox accepted every event.
Both read records that were written before they start, and both clocks start at the first
record received, so that the consumer group join (a fixed wait) is not counted.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

from relay.broker import free_port
from relay.config import Settings, default_mapping_path, load_settings
from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_consumer, make_producer
from relay.pipeline.worker import Worker
from relay.tools.produce import generate_web, usable_pixels
from relay.tools.stack import local_stack, sandbox_stats

BENCH_LIMIT: Final = 10**12  # budget out of the way: this measures the relay, not X's limit
TIMEOUT_S: Final = 600.0


@dataclass
class Result:
    name: str
    records: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.records / self.seconds


async def _fill(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await ensure_topics(bootstrap, [topic])
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        batcher = BatchProducer(producer)
        for start in range(0, len(values), 5000):
            await batcher.send_and_wait(OutRecord(topic, v) for v in values[start : start + 5000])
    finally:
        await producer.stop()


async def measure_floor(bootstrap: str, values: list[bytes]) -> Result:
    source, sink = "bench.floor.in", "bench.floor.out"
    await _fill(bootstrap, source, values)
    await ensure_topics(bootstrap, [sink])
    consumer = make_consumer(
        bootstrap,
        source,
        group_id="bench-floor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = make_producer(bootstrap)
    await asyncio.gather(consumer.start(), producer.start())
    batcher = BatchProducer(producer)
    moved = 0
    started: float | None = None
    try:
        while moved < len(values):
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()  # the group join is not throughput
            out = [
                OutRecord(sink, orjson.dumps(orjson.loads(m.value)))
                for msgs in batch.values()
                for m in msgs
            ]
            futures = await batcher.send_many(out)
            await asyncio.gather(*futures)
            moved += len(out)
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
    return Result("floor: getmany + orjson + send_batch", moved, elapsed)


async def measure_end_to_end(
    bootstrap: str, sandbox_url: str, values: list[bytes], report: Callable[[str], None]
) -> Result:
    settings: Settings = load_settings(
        {
            "RELAY_KAFKA_BOOTSTRAP": bootstrap,
            "RELAY_API_BASE_URL": sandbox_url,
            "RELAY_CONFIG": str(default_mapping_path()),
            "RELAY_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "RELAY_TOPIC_PREFIX": "bench",
            "RELAY_INPUTS": "bench.input.web=web",
            "RELAY_ACCOUNT_LIMIT": str(BENCH_LIMIT),
            "RELAY_HTTP_PORT": str(free_port()),
        }
    )
    await _fill(bootstrap, "bench.input.web", values)
    worker = Worker(settings, http_host="127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + TIMEOUT_S
        started: float | None = None
        while worker.metrics.total("relay_events_delivered") < len(values):
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the relay stopped or timed out before delivering every event")
            if started is None and worker.metrics.total("relay_events_consumed"):
                started = time.perf_counter()  # the group join is not throughput
            await asyncio.sleep(0.005 if started is None else 0.05)
            done = int(worker.metrics.total("relay_events_delivered"))
            report(f"end to end: {done:,}/{len(values):,} delivered")
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        stop.set()
        await task
    accepted = (await sandbox_stats(sandbox_url)).get("conversions_accepted")
    if accepted != len(values):
        raise RuntimeError(f"sandbox accepted {accepted}, expected {len(values)}")
    return Result("end to end: web, email + phone, sandbox", len(values), elapsed)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def render(results: list[Result], events: int, ratio: float) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "unknown"
    )
    lines = [
        f"## throughput, {stamp} (commit {commit})",
        "",
        f"Command: `relay bench throughput --events {events}`  ",
        f"Machine: {machine()}",
        "",
        "| measurement | records | seconds | records/s |",
        "|---|---:|---:|---:|",
        *(f"| {r.name} | {r.records:,} | {r.seconds:.2f} | {r.per_s:,.0f} |" for r in results),
        "",
        f"Ratio end to end / floor, measured side by side in this run: **{ratio:.3f}**",
        "",
    ]
    return "\n".join(lines)


async def bench_throughput(
    events: int, report: Callable[[str], None]
) -> tuple[list[Result], float]:
    env = {"RELAY_ACCOUNT_LIMIT": str(BENCH_LIMIT)}
    async with local_stack(env) as stack:
        values = [
            s.value
            for s in generate_web(
                events,
                usable_pixels(load_settings({"RELAY_CONFIG": str(default_mapping_path())}).mapping),
            )
        ]
        report("measuring the floor")
        floor = await measure_floor(stack.bootstrap, values)
        report(f"floor: {floor.per_s:,.0f} records/s; measuring end to end")
        e2e = await measure_end_to_end(stack.bootstrap, stack.sandbox_url, values, report)
    return [floor, e2e], e2e.per_s / floor.per_s


def run_throughput_bench(events: int, write: Path | None) -> int:
    def report(line: str) -> None:
        print(f"\r{line:<70}", end="", file=sys.stderr, flush=True)

    results, ratio = asyncio.run(bench_throughput(events, report))
    text = render(results, events, ratio)
    print("\n" + text)
    if write is not None:
        header = "" if write.exists() else "# Benchmarks\n\n"
        with write.open("a", encoding="utf-8") as out:
            out.write(header + text + "\n")
    return 0
