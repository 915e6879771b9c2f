"""Scenario results as JSON under bench/results/: machine, date, commit, command, settings,
measured values, targets with pass/fail. `relay bench report` renders them."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from relay.tools.bench.context import Run

RESULTS_DIR: Final = Path("bench/results")
Op = Literal[">=", "<=", "=="]


@dataclass(frozen=True)
class Target:
    """`value op limit`, e.g. ratio >= 0.4. A value of None (not measured) fails."""

    name: str
    value: float | None
    op: Op
    limit: float
    unit: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        if self.op == ">=":
            return self.value >= self.limit
        if self.op == "<=":
            return self.value <= self.limit
        return self.value == self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "limit": self.limit,
            "unit": self.unit,
            "pass": self.passed,
        }


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


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


NOT_CODE: Final = (":!bench", ":!BENCHMARKS.md", ":!README.md", ":!docs")  # not what runs


def commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    # Results and the report written by earlier runs are not the code being measured.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (out or "unknown") + ("+dirty" if out and dirty else "")


def build(
    run: Run,
    name: str,
    result: dict[str, Any],
    targets: list[Target],
    *,
    settings: str,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "scenario": name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "machine": machine(),
        "load_average_at_end": load_average(),
        "command": run.command,
        "quick": run.quick,
        "settings": settings,
        "duration_s": round(time.monotonic() - run.started, 1),
        "result": result,
        "targets": [t.to_json() for t in targets],
        "pass": error is None and all(t.passed for t in targets),
        "error": error,
    }


def write(doc: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{doc['scenario']}.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return path


def load_all(results_dir: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(results_dir.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        if isinstance(doc, dict) and "scenario" in doc:
            docs.append(doc)
    return docs


def summary_line(doc: dict[str, Any]) -> str:
    verdict = "PASS" if doc["pass"] else "FAIL"
    parts = [f"{t['name']} {_fmt(t['value'])} {t['op']} {_fmt(t['limit'])}" for t in doc["targets"]]
    if doc.get("error"):
        parts.append(f"error: {doc['error'].splitlines()[0]}")
    return f"{doc['scenario']}: {verdict}  " + "; ".join(parts)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
