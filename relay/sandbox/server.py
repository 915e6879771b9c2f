"""Serving the sandbox: `SandboxServer` for tests and the demo, `run_sandbox` for the CLI."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from pathlib import Path
from typing import Final

from aiohttp import web

from relay.lifecycle import Lifecycle
from relay.sandbox.app import create_app
from relay.sandbox.config import SandboxConfig, load_sandbox_config
from relay.sandbox.faults import Faults
from relay.sandbox.state import Clock

# The sandbox keeps every accepted conversion (journal, dedup, nonces): with CPython's
# default thresholds the collector would walk that ever-growing heap again and again, a
# third of the time of an answer. Young collections every 50,000 allocations instead of
# 700, and what exists once serving starts frozen out of the collector's walks.
GC_THRESHOLDS: Final = (50_000, 20, 100)


class SandboxServer(Lifecycle):
    """The sandbox on a real socket; port 0 picks a free port, `.url` tells which.

    async with SandboxServer(load_sandbox_config(None, {})) as server:
        ...  # call server.url
    """

    what = "SandboxServer"

    def __init__(
        self,
        config: SandboxConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock = time.time,
        faults: Faults | None = None,
    ):
        self.config = config
        self.host = host
        self.port = port
        self._clock = clock
        self._faults = faults
        self._runner: web.AppRunner | None = None
        self._url = ""  # known once open

    @property
    def url(self) -> str:
        """`http://host:port`, with the port actually bound."""
        self._require_open(": no url")
        return self._url

    async def _open(self) -> None:
        app = create_app(self.config, clock=self._clock, faults=self._faults)
        # Access logs would cost a line per request at the benchmark's rate; /_sandbox/stats counts.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{host}:{bound_port}"

    async def _close(self) -> None:
        """Stop serving."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def run_sandbox(
    host: str, port: int, config_path: Path | None, faults: Faults | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; prints `sandbox listening on <url>` once ready."""
    config = load_sandbox_config(config_path, os.environ)
    asyncio.run(serve_until_signalled(config, host, port, faults))


async def serve_until_signalled(
    config: SandboxConfig, host: str, port: int, faults: Faults | None = None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SandboxServer(config, host, port, faults=faults) as server:
            gc.set_threshold(*GC_THRESHOLDS)
            gc.freeze()
            print(f"sandbox listening on {server.url}", flush=True)
            await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
