"""Seconds from `relay run` (default settings but the budget) to its first delivery, on a
first start and on a restart (SIGTERM, then start again on the same groups).

    python scripts/perf/startup.py --bootstrap 127.0.0.1:9092 --api http://127.0.0.1:8080

Needs `relay broker` and `relay sandbox` running. `--code DIR` runs the worker from another
checkout (PYTHONPATH=DIR).
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def delivered(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            body = resp.read().decode()
    except OSError:
        return 0.0
    pattern = r"^relay_events_delivered_total\{[^}]*\} (\S+)"
    return sum(float(m.group(1)) for m in re.finditer(pattern, body, re.M))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--code", help="run the worker from this checkout")
    parser.add_argument("--label", default="run")
    args = parser.parse_args()
    prefix = f"start{time.time_ns() % 10**10}"
    topic = f"{prefix}.input.web"
    mapping = Path(__file__).resolve().parents[2] / "relay" / "data" / "defaults.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        RELAY_KAFKA_BOOTSTRAP=args.bootstrap,
        RELAY_API_BASE_URL=args.api,
        RELAY_CONFIG=str(mapping),
        RELAY_TOPIC_PREFIX=prefix,
        RELAY_INPUTS=f"{topic}=web",
        RELAY_ACCOUNT_LIMIT="4500000",
    )
    for run in ("first start", "restart"):
        produce = [sys.executable, "-m", "relay", "produce", "--format", "web"]
        subprocess.run(
            [*produce, "--count", "20", "--topic", topic], env=env, check=True, capture_output=True
        )
        port = free_port()
        run_env = {**env, "RELAY_HTTP_PORT": str(port)}
        if args.code:
            run_env["PYTHONPATH"] = args.code
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "relay", "run"],
            env=run_env,
            cwd="/",
            stderr=subprocess.DEVNULL,
        )
        took = None
        try:
            while took is None and time.monotonic() - started < 60:
                if delivered(port) > 0:
                    took = time.monotonic() - started
                time.sleep(0.02)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        shown = f"{took:.2f} s" if took is not None else "none within 60 s"
        print(f"{args.label} {run}: first delivery after {shown}", flush=True)


if __name__ == "__main__":
    main()
