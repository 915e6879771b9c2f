"""The sandbox as an aiohttp application: X's routes, the control routes, X's error bodies.

Every answer carries `x-current-api-version`; every error, X's error body. Requests to X's
routes are counted by endpoint and status, rejections by X's error code.

One middleware, edge.py: X's capacity, injected faults, X's error bodies and counters, the
user token's budget.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from relay.sandbox import (
    capacity,
    control,
    edge,
    fault_middleware,
    mact,
    openapi,
    resources,
    web_conversions,
)
from relay.sandbox.config import SandboxConfig
from relay.sandbox.faults import Faults
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY, WEB_FAST_PATH_KEY
from relay.sandbox.state import Clock, SandboxState

# 500 conversions with long contents stay far below this; aiohttp's default is 1 MiB.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024


def create_app(
    config: SandboxConfig,
    *,
    clock: Clock = time.time,
    faults: Faults | None = None,
    web_fast_path: bool = True,
) -> web.Application:
    app = web.Application(
        middlewares=[edge.x_edge],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONFIG_KEY] = config
    app[WEB_FAST_PATH_KEY] = web_fast_path
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
    return app
