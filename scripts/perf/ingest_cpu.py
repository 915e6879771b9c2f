"""CPU per 1,000 events of a separate `relay run --stage ingest` process, in steady state.

Fills a fresh input topic with `relay produce`, starts the ingest stage as its own process
with default settings, and reads user + system CPU of that process from /proc/<pid>/stat
when its consumed counter passes 10% and 90% of the records.

    python scripts/perf/ingest_cpu.py --format web --count 100000 [--code DIR]

`--code DIR` runs the ingest process from another checkout (PYTHONPATH=DIR), for a before /
after comparison on the same data; the machine is shared, so compare runs back to back.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HMAC_KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="  # a test key, base64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def consumed(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            body = resp.read().decode()
    except OSError:
        return 0
    found = re.search(r'^relay_events_consumed_total\{stage="ingest"\} (\S+)', body, re.M)
    return int(float(found.group(1))) if found else 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--format", default="web")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--code", help="run the ingest process from this checkout")
    parser.add_argument("--label", default="run")
    args = parser.parse_args()
    prefix = f"perf{time.time_ns() % 10**10}"
    topic = f"{prefix}.input.{args.format}"
    mapping = Path(__file__).resolve().parents[2] / "relay" / "data" / "defaults.toml"
    env = {
        **os.environ,
        "RELAY_KAFKA_BOOTSTRAP": args.bootstrap,
        "RELAY_TOPIC_PREFIX": prefix,
        "RELAY_INPUTS": f"{topic}={args.format}",
        "RELAY_CONFIG": str(mapping),
        "RELAY_DEVICE_ID_HMAC_KEY": HMAC_KEY,
        "RELAY_LOG_LEVEL": "WARNING",
    }
    produce = [sys.executable, "-m", "relay", "produce", "--format", args.format]
    produce += ["--count", str(args.count), "--topic", topic]
    subprocess.run(produce, env=env, check=True, capture_output=True)
    port = free_port()
    run_env = {**env, "RELAY_HTTP_PORT": str(port)}
    if args.code:
        run_env["PYTHONPATH"] = args.code
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "run", "--stage", "ingest"],
        env=run_env,
        cwd="/",
        stderr=subprocess.DEVNULL,
    )
    low, high = args.count // 10, args.count * 9 // 10
    start: tuple[int, float, float] | None = None
    end: tuple[int, float, float] | None = None
    deadline = time.monotonic() + 600
    try:
        while end is None and time.monotonic() < deadline:
            n = consumed(port)
            if start is None and n >= low:
                start = (n, cpu_s(process.pid), time.monotonic())
            elif start is not None and n >= high:
                end = (n, cpu_s(process.pid), time.monotonic())
            time.sleep(0.2)  # the /metrics scrape costs the process CPU too: rarely
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    if start is None or end is None:
        raise SystemExit("the ingest stage did not get through the records in time")
    events, cpu, wall = end[0] - start[0], end[1] - start[1], end[2] - start[2]
    print(
        f"{args.label} {args.format}: {events} events, cpu {cpu:.2f} s, wall {wall:.2f} s, "
        f"{1e6 * cpu / events:.1f} ms CPU per 1,000 events, {events / wall:,.0f} events/s"
    )


if __name__ == "__main__":
    main()
