"""The sandbox as an aiohttp application: X's routes, the control routes, X's error bodies.

Every answer carries `x-current-api-version`; every error, X's error body. Requests to X's
routes are counted by endpoint and status, rejections by X's error code.

Middlewares, outermost first: X's capacity (capacity.py: 503 OVER_CAPACITY), injected
faults (fault_middleware.py), X's error bodies and counters (here), the user token's budget
(metering.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.sandbox import (
    capacity,
    control,
    fault_middleware,
    mact,
    metering,
    openapi,
    resources,
    web_conversions,
)
from relay.sandbox.config import SandboxConfig
from relay.sandbox.faults import Faults
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.responses import API_VERSION, API_VERSION_HEADER, XApiError
from relay.sandbox.state import Clock, SandboxState

# 500 conversions with long contents stay far below this; aiohttp's default is 1 MiB.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
UNMATCHED: Final = "unmatched"

logger = logging.getLogger(__name__)


def create_app(
    config: SandboxConfig, *, clock: Clock = time.time, faults: Faults | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[
            capacity.limit_in_flight,
            fault_middleware.inject_faults,
            x_errors,
            metering.charge_token,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONFIG_KEY] = config
    state = app[STATE_KEY] = SandboxState(config, clock)
    if faults is not None:
        state.faults.set(faults, clock())
    capacity.setup(app)
    fault_middleware.setup(app)
    web_conversions.add_routes(app)
    mact.add_routes(app)
    resources.add_routes(app)
    openapi.add_routes(app)
    control.add_routes(app)
    app.on_response_prepare.append(_api_version)
    app.on_response_prepare.append(metering.budget_headers)
    return app


@web.middleware
async def x_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """X's error bodies for every failure, and the request counters."""
    codes: list[str] = []
    try:
        response = await handler(request)
    except XApiError as exc:
        response = exc.response()
        codes = [e.code for e in exc.errors]
    except web.HTTPNotFound:
        response = _error(404, "ROUTE_NOT_FOUND", "The requested resource could not be found")
        codes = ["ROUTE_NOT_FOUND"]
    except web.HTTPMethodNotAllowed:
        response = _error(405, "METHOD_NOT_ALLOWED", "The method is not allowed for this resource")
        codes = ["METHOD_NOT_ALLOWED"]
    except web.HTTPException as exc:
        _count(request, exc.status, ())
        raise
    except Exception:
        logger.exception("sandbox: %s %s failed", request.method, request.path)
        response = _error(500, "INTERNAL_ERROR", "Internal error")
        codes = ["INTERNAL_ERROR"]
    _count(request, response.status, codes)
    return response


def _error(status: int, code: str, message: str) -> web.Response:
    return XApiError.single(status, code, message).response()


def _count(request: web.Request, status: int, codes: Sequence[str]) -> None:
    if request.path.startswith(control.PREFIX):
        return  # polling the sandbox must not change what it reports
    resource = request.match_info.route.resource
    endpoint = f"{request.method} {resource.canonical}" if resource is not None else UNMATCHED
    request.app[STATE_KEY].stats.record(endpoint, status, codes)


async def _api_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER] = API_VERSION
