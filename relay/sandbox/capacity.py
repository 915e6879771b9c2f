"""X's 503 OVER_CAPACITY: more requests in flight on X's routes than the sandbox serves at
once (`[sandbox] max_in_flight` in the config) are turned away at the door, before any
other work, with `Retry-After`. Control routes (`/_sandbox/*`) are never turned away."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.sandbox.control import PREFIX
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.responses import XApiError

OVER_CAPACITY: Final = "OVER_CAPACITY"
RETRY_AFTER_S: Final = 1
IN_FLIGHT_KEY: Final = web.AppKey("in_flight", list[int])  # one mutable counter


@web.middleware
async def limit_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PREFIX):
        return await handler(request)
    counter = request.app[IN_FLIGHT_KEY]
    if counter[0] >= request.app[CONFIG_KEY].max_in_flight:
        request.app[STATE_KEY].stats.record("over capacity", 503, (OVER_CAPACITY,))
        response = XApiError.single(503, OVER_CAPACITY, "Service is over capacity").response()
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    counter[0] += 1
    try:
        return await handler(request)
    finally:
        counter[0] -= 1


def setup(app: web.Application) -> None:
    app[IN_FLIGHT_KEY] = [0]
