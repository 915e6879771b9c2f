"""Serving the sandbox: `SandboxServer` for tests and the demo, `run_sandbox` for the CLI."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aiohttp import web

from relay.eventloop import loop_factory
from relay.lifecycle import Lifecycle
from relay.sandbox.app import MAX_BODY_BYTES, create_app
from relay.sandbox.config import SandboxConfig, load_sandbox_config
from relay.sandbox.faults import Faults
from relay.sandbox.keys import STATE_KEY
from relay.sandbox.state import Clock

if TYPE_CHECKING:
    from relay.sandbox.http11 import HttpRequest, HttpServer
    from relay.sandbox.routing import Router

# The sandbox keeps every accepted conversion (journal, dedup, nonces): with CPython's
# default thresholds the collector would walk that ever-growing heap again and again, a
# third of the time of an answer. Young collections every 50,000 allocations instead of
# 700, and what exists once serving starts frozen out of the collector's walks.
GC_THRESHOLDS: Final = (50_000, 20, 100)
SHUTDOWN_TIMEOUT_S: Final = 10.0

logger = logging.getLogger(__name__)


def own_server_available() -> bool:
    """The sandbox's own HTTP server needs httptools (the `sandbox` extra); without it
    aiohttp serves every route."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


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
        own_server: bool | None = None,
        web_fast_path: bool = True,
    ):
        """`own_server`: serve on the sandbox's own HTTP server (http11.py) with the
        conversion endpoints on its fast path; None: whenever httptools is installed.
        `web_fast_path`: valid web requests in the common form are accepted in one pass
        (validation_fast.py); False: validation.py checks every one (the reference)."""
        self.config = config
        self.own_server = own_server_available() if own_server is None else own_server
        self.host = host
        self.port = port
        self._clock = clock
        self._faults = faults
        self._web_fast_path = web_fast_path
        self._runner: web.AppRunner | None = None
        self._http: HttpServer | None = None
        self._router: Router | None = None
        self._url = ""  # known once open

    @property
    def url(self) -> str:
        """`http://host:port`, with the port actually bound."""
        self._require_open(": no url")
        return self._url

    @property
    def fast_answers(self) -> int:
        """conversion_event requests its fast path answered (mact_fast.py); 0 on aiohttp."""
        return self._router.conversion_event_answers if self._router is not None else 0

    @property
    def web_fast_answers(self) -> int:
        """Web conversions requests validation_fast.py accepted."""
        self._require_open(": no app")
        assert self._runner is not None
        return self._runner.app[STATE_KEY].web_fast_requests

    async def _open(self) -> None:
        app = create_app(
            self.config, clock=self._clock, faults=self._faults, web_fast_path=self._web_fast_path
        )
        # Access logs would cost a line per request at the benchmark's rate; /_sandbox/stats counts.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runner = runner
        if self.own_server:
            bound_host, bound_port = await self._start_own(app, runner)
        else:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
        host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{host}:{bound_port}"

    async def _close(self) -> None:
        """Stop serving."""
        runner, self._runner = self._runner, None
        http, self._http = self._http, None
        if http is not None and runner is not None:
            # The app's shutdown first releases requests that would wait forever (hangs).
            await http.close(SHUTDOWN_TIMEOUT_S, before_drain=runner.shutdown())
        if runner is not None:
            await runner.cleanup()

    async def _start_own(self, app: web.Application, runner: web.AppRunner) -> tuple[str, int]:
        from relay.sandbox.http11 import HttpServer, Limits
        from relay.sandbox.routing import Router

        assert runner.server is not None  # set up
        router = self._router = Router(app, runner.server, MAX_BODY_BYTES)
        self._http = HttpServer(
            router,
            Limits(max_body_bytes=MAX_BODY_BYTES),
            on_error=_log_error,
            immediate=router.immediate,
        )
        return await self._http.start(self.host, self.port)


def _log_error(request: HttpRequest, exc: BaseException | None) -> None:
    logger.error(
        "sandbox: %s %s failed",
        request.method,
        request.target.partition("?")[0],
        exc_info=exc or True,
    )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it can be imported (a main dependency): less CPU per answer than
    asyncio's own (bench/sandbox.md); None (asyncio's default loop) without it."""
    return loop_factory("uvloop")


def run_sandbox(
    host: str, port: int, config_path: Path | None, faults: Faults | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; prints `sandbox listening on <url>` once ready."""
    config = load_sandbox_config(config_path, os.environ)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve_until_signalled(config, host, port, faults))


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
