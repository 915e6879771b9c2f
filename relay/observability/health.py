"""The worker's HTTP side: /metrics (Prometheus), /healthz (alive), /readyz (ready)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relay.observability.metrics import Metrics

Readiness = Callable[[], tuple[bool, str]]

READINESS: Final = web.AppKey[Readiness]("readiness")
METRICS: Final = web.AppKey("metrics", Metrics)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    ready, reason = request.app[READINESS]()
    return web.json_response(
        {"status": "ready" if ready else "not ready", "reason": reason},
        status=200 if ready else 503,
    )


def health_app(metrics: Metrics, readiness: Readiness) -> web.Application:
    app = web.Application()
    app[METRICS] = metrics
    app[READINESS] = readiness
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


async def start_health_server(
    metrics: Metrics, readiness: Readiness, host: str, port: int
) -> web.AppRunner:
    runner = web.AppRunner(health_app(metrics, readiness), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
