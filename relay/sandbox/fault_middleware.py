"""The outermost middleware: it carries out the faults of faults.py on X's routes.

Injected answers bypass the endpoints and X's request counters: they are counted apart in
`/_sandbox/stats` under `faults` (latency, drop, hang, storm_429, error_<status>). A drop
aborts the connection without an answer; a hang answers nothing until the client gives up
(at most `hang_max_s`, or until the sandbox shuts down), then drops. Without faults in force
a request pays one attribute test.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.sandbox.control import PREFIX
from relay.sandbox.faults import DROP, HANG
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.limits import ACCOUNT_PREFIX, TOO_MANY_REQUESTS, BudgetState
from relay.sandbox.metering import note_arrival
from relay.sandbox.responses import XApiError

RELEASE_KEY: Final = web.AppKey("hangs_released", asyncio.Event)

# X's codes for the statuses it documents; any other status gets the nearest family's.
_CODES: Final = {
    400: ("INVALID_PARAMETER", "Invalid parameter"),
    401: ("UNAUTHORIZED_ACCESS", "This request is not properly authenticated"),
    403: ("UNAUTHORIZED_CLIENT_APPLICATION", "The client application is not permitted"),
    404: ("NOT_FOUND", "The requested resource could not be found"),
    408: ("CANCELLED_REQUEST", "The request was cancelled"),
    423: ("LOCK_ACQUISITION_TIMEOUT", "Lock acquisition timed out"),
    429: (TOO_MANY_REQUESTS, "Rate limit exceeded"),
    500: ("INTERNAL_ERROR", "Internal error"),
    503: ("SERVICE_UNAVAILABLE", "Service unavailable"),
}
# X's edge answers these with an HTML page, not X's JSON: clients must go by the status.
_HTML_STATUSES: Final = frozenset({502, 504})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PREFIX):
        return await handler(request)
    note_arrival(request)  # before any fault: a storm's 429s count as answers too
    state = request.app[STATE_KEY]
    injector = state.faults
    if not injector.applies_to(request.path):
        return await handler(request)
    now = state.clock()
    decision = injector.decide(now)
    count = state.stats.faults
    if decision.storm_until is not None:
        count["storm_429"] += 1
        return _too_many(request, decision.storm_until, now)
    if decision.latency_s:
        count["latency"] += 1
        await asyncio.sleep(decision.latency_s)
    outcome = decision.outcome
    if outcome is None:
        return await handler(request)
    if outcome == DROP:
        count["drop"] += 1
        return _drop(request)
    if outcome == HANG:
        count["hang"] += 1
        released = request.app[RELEASE_KEY]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), injector.faults.hang_max_s)
        return _drop(request)
    status = int(outcome)
    count[f"error_{status}"] += 1
    if status == 429:
        return _too_many(request, now + injector.faults.retry_after_s, now)
    return _error(status, injector.faults.retry_after_s)


def _drop(request: web.Request) -> web.StreamResponse:
    """Closes the connection; the response returned is never sent."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


def _error(status: int, retry_after_s: int) -> web.Response:
    if status in _HTML_STATUSES:
        response = web.Response(
            status=status,
            text=f"<html><body><h1>{status}</h1></body></html>",
            content_type="text/html",
        )
    else:
        family = _CODES.get(status) or _CODES[500 if status >= 500 else 400]
        response = XApiError.single(status, *family).response()
    if status in _RETRY_AFTER_STATUSES:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


def _too_many(request: web.Request, until: float, now: float) -> web.Response:
    """X's 429 with the account headers: nothing left until `until`."""
    response = XApiError.single(429, *_CODES[429]).response()
    limit = request.app[CONFIG_KEY].account_limit
    response.headers.update(BudgetState(limit, 0, math.ceil(until)).headers(ACCOUNT_PREFIX))
    response.headers["Retry-After"] = str(max(math.ceil(until - now), 0))
    return response


async def release_hangs(app: web.Application) -> None:
    """`on_shutdown`: hanging requests end now, so that the server closes promptly."""
    app[RELEASE_KEY].set()


def setup(app: web.Application) -> None:
    app[RELEASE_KEY] = asyncio.Event()
    app.on_shutdown.append(release_hangs)
