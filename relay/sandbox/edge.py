"""The edge of the sandbox: what every request passes through before and after its route,
in one middleware (a layer less per step than a chain of middlewares).

On X's routes, in order: X's capacity (capacity.py: 503 OVER_CAPACITY), the arrival note of
an account told to wait (metering.py), injected faults (fault_middleware.py), X's error
bodies and the request counters (here), the user token's budget (metering.py). The control
routes (`/_sandbox/*`) get X's error bodies only, and are not counted. Every answer carries
`x-current-api-version`; those of X's routes, the budget headers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.sandbox import capacity, control, fault_middleware, metering
from relay.sandbox.auth import token_of
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.responses import API_VERSION, API_VERSION_HEADER, XApiError

UNMATCHED: Final = "unmatched"

logger = logging.getLogger(__name__)


@web.middleware
async def x_edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(control.PREFIX):
        try:
            response = await x_errors(request, handler, counted=False)
        except web.HTTPException as exc:  # answered by aiohttp: it carries the header too
            exc.headers[API_VERSION_HEADER] = API_VERSION
            raise
        response.headers[API_VERSION_HEADER] = API_VERSION
        return response
    account = metering.request_account(request)  # the one whose budget the route spends
    try:
        response = await _x_route(request, handler, account)
    except web.HTTPException as exc:
        _x_headers(request, exc, account)
        raise
    _x_headers(request, response, account)
    return response


async def _x_route(
    request: web.Request, handler: Handler, account: str | None
) -> web.StreamResponse:
    app = request.app
    refused = capacity.enter(app)
    if refused is not None:
        return refused
    try:
        # Before any fault: a storm's 429s count as answers too.
        metering.note_arrival(request, account)
        if app[STATE_KEY].faults.applies_to(request.path):
            endpoint = functools.partial(x_errors, handler=handler, counted=True)
            return await fault_middleware.inject_faults(request, endpoint)
        return await x_errors(request, handler, counted=True)
    finally:
        capacity.leave(app)


async def x_errors(request: web.Request, handler: Handler, *, counted: bool) -> web.StreamResponse:
    """X's error bodies for every failure; on X's routes (`counted`), the token's budget
    and the request counters."""
    codes: list[str] = []
    try:
        if counted:
            response = await metering.charge_token(request, handler)
        else:
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
        if counted:
            _count(request, exc.status, ())
        raise
    except Exception:
        logger.exception("sandbox: %s %s failed", request.method, request.path)
        response = _error(500, "INTERNAL_ERROR", "Internal error")
        codes = ["INTERNAL_ERROR"]
    if counted:
        _count(request, response.status, codes)
    return response


def _error(status: int, code: str, message: str) -> web.Response:
    return XApiError.single(status, code, message).response()


def _count(request: web.Request, status: int, codes: Sequence[str]) -> None:
    resource = request.match_info.route.resource
    endpoint = f"{request.method} {resource.canonical}" if resource is not None else UNMATCHED
    creds = token_of(request, request.app[CONFIG_KEY])
    token = creds.access_token if creds is not None else None
    request.app[STATE_KEY].stats.record(endpoint, status, codes, token)


def _x_headers(request: web.Request, response: web.StreamResponse, account: str | None) -> None:
    """The API version and the budget headers."""
    response.headers[API_VERSION_HEADER] = API_VERSION
    metering.budget_headers(request, response, account)
