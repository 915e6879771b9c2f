"""`relay bench` at a tiny size, as a user runs it: one scenario end to end (its own broker,
sandbox and `relay run` processes), the JSON it writes, and the report made from it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.tools.bench.report import render

pytestmark = pytest.mark.kafka


MARK = f"relay-bench-smoke-{uuid.uuid4().hex}"  # inherited by every process the bench starts


def bench(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["BENCH_SMOKE_MARK"] = MARK
    return subprocess.run(
        [sys.executable, "-m", "relay", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )


def marked_processes() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and MARK.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def check_shape(doc: dict[str, Any], scenario: str) -> None:
    for key in ("date", "commit", "machine", "command", "settings", "result", "targets"):
        assert doc[key] not in (None, ""), key
    assert doc["scenario"] == scenario
    assert doc["quick"] is True
    assert isinstance(doc["pass"], bool)
    for target in doc["targets"]:
        assert set(target) == {"name", "value", "op", "limit", "unit", "pass"}
        assert target["op"] in (">=", "<=", "==")


def test_throughput_writes_a_complete_result_and_a_report(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = bench(
        "throughput",
        *("--quick", "--events", "300", "--rounds", "2", "--timeout", "80"),
        *("--results-dir", str(results)),
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "[bench throughput" in done.stderr  # progress lines
    doc = orjson.loads((results / "throughput-web.json").read_bytes())
    check_shape(doc, "throughput-web")
    assert doc["error"] is None, doc["error"]
    assert doc["command"] == "relay bench throughput --quick --events 300 --rounds 2"
    assert "RELAY_ACCOUNT_LIMIT" in doc["settings"]  # the budget change is stated
    e2e, floor = doc["result"]["end_to_end"], doc["result"]["floor"]
    assert e2e["events"] == 300 and floor["records"] == 300
    assert e2e["per_s"] > 0 and floor["per_s"] > 0
    assert e2e["cpu_s_per_1000"] > 0 and floor["cpu_s_per_1000"] > 0
    assert e2e["peak_rss_mb"] > 10
    assert doc["result"]["ratio"] == pytest.approx(e2e["per_s"] / floor["per_s"], rel=1e-3)
    # the cores the relay shared: each neighbour's CPU over the same span, and the ceiling
    neighbours = e2e["neighbours_cpu_us_per_event"]
    assert set(neighbours) == {"sandbox", "broker", "bench"}  # CPU ticks: 0 in a short run
    total_us = e2e["cpu_us_per_event"] + sum(neighbours.values())
    assert e2e["machine_ceiling_per_s"] == pytest.approx(
        (os.cpu_count() or 1) * 1e6 / total_us, rel=0.05
    )
    assert doc["result"]["machine_ceiling_ratio"] == pytest.approx(
        e2e["machine_ceiling_per_s"] / floor["per_s"], rel=0.05
    )
    assert [t["name"] for t in doc["targets"]] == ["ratio to floor", "relay CPU per event"]
    # floor and end to end twice, alternating; the targets on the (lower) medians
    rounds = doc["result"]["rounds"]
    assert len(rounds) == 2 and all(r["per_s"] > 0 and r["floor_per_s"] > 0 for r in rounds)
    assert doc["targets"][0]["value"] == min(r["ratio"] for r in rounds)
    assert doc["targets"][1]["value"] == min(r["cpu_us_per_event"] for r in rounds)
    assert marked_processes() == [], "the bench left processes behind"
    text = render(results, tmp_path / "BENCHMARKS.md", tmp_path / "charts")
    assert "| throughput-web (quick) | ratio to floor |" in text
    assert "Command: `relay bench throughput --quick --events 300 --rounds 2`" in text


def test_a_scenario_that_cannot_run_still_reports(tmp_path: Path) -> None:
    done = bench(
        "throughput",
        "--quick",
        "--events",
        "10",
        "--results-dir",
        str(tmp_path),
        "--set",
        "RELAY_INPUTS=not-a-format",
        timeout_s=60,
    )
    assert done.returncode == 1
    doc = orjson.loads((tmp_path / "throughput-web.json").read_bytes())
    check_shape(doc, "throughput-web")
    assert doc["pass"] is False and doc["error"]


def test_sigterm_stops_the_bench_and_every_process_it_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["BENCH_SMOKE_MARK"] = MARK
    with subprocess.Popen(
        [
            *(sys.executable, "-m", "relay", "bench", "throughput", "--quick"),
            *("--events", "300", "--timeout", "80", "--results-dir", str(tmp_path)),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:  # wait until it has started its broker and sandbox
            if "measuring" in line or "first delivery" in line:
                break
        process.terminate()
        process.communicate(timeout=60)
    doc = orjson.loads((tmp_path / "throughput-web.json").read_bytes())
    assert doc["error"] == "BenchStopped: stopped by signal 15"
    deadline = time.monotonic() + 30
    while marked_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked_processes() == [], "SIGTERM left processes of the bench behind"
