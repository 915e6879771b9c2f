"""X's 503 OVER_CAPACITY: more requests in flight on X's routes than the sandbox serves at
once (`[sandbox] max_in_flight` in the config) are turned away at the door, before any
other work, with `Retry-After`. Control routes (`/_sandbox/*`) are never turned away: the
edge (edge.py) asks only for X's routes."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.responses import XApiError

OVER_CAPACITY: Final = "OVER_CAPACITY"
RETRY_AFTER_S: Final = 1
IN_FLIGHT_KEY: Final = web.AppKey("in_flight", list[int])  # one mutable counter


def enter(app: web.Application) -> web.Response | None:
    """503 when the sandbox serves as many requests as it may; else None, and the request
    counts as in flight until `leave`."""
    counter = app[IN_FLIGHT_KEY]
    if counter[0] >= app[CONFIG_KEY].max_in_flight:
        app[STATE_KEY].stats.record("over capacity", 503, (OVER_CAPACITY,))
        response = XApiError.single(503, OVER_CAPACITY, "Service is over capacity").response()
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    counter[0] += 1
    return None


def leave(app: web.Application) -> None:
    app[IN_FLIGHT_KEY][0] -= 1


def setup(app: web.Application) -> None:
    app[IN_FLIGHT_KEY] = [0]
