"""A real Prometheus (Debian's `prometheus` package) for the tests: started on a free port,
scraping given targets every second and evaluating the relay's alert rules."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from relay.broker import free_port
from relay.signals import end_process

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yaml"


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params=params) as resp,
        ):
            body = await resp.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def scalar(self, expr: str, at: float | None = None) -> float:
        """The single value of `expr` (which must return exactly one series)."""
        result = await self.query(expr, at)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    async def wait_for(self, expr: str, timeout_s: float, what: str) -> None:
        """Until `expr` returns at least one series."""
        deadline = time.monotonic() + timeout_s
        while not await self.query(expr):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what} ({expr})")
            await asyncio.sleep(0.2)

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as resp:
            return (await resp.json())["data"]


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    return [v for v in (float(r["value"][1]) for r in result) if math.isfinite(v)]


@contextlib.asynccontextmanager
async def prometheus(tmp_path: Path, targets: list[str], job: str) -> AsyncIterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (.ci/run installs Debian's package)")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": job,
                # What the ServiceMonitor's podTargetLabels adds in Kubernetes.
                "static_configs": [
                    {"targets": targets, "labels": {"app_kubernetes_io_name": "conversion-relay"}}
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{server.url}/-/ready") as resp,
                ):
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline or process.returncode is not None:
                raise AssertionError("prometheus did not start")
            await asyncio.sleep(0.1)
        yield server
    finally:
        await end_process(process, 10)
