"""The typed keys under which the sandbox app holds its config and state."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from relay.sandbox.config import SandboxConfig
from relay.sandbox.state import SandboxState

CONFIG_KEY: Final = web.AppKey("config", SandboxConfig)
STATE_KEY: Final = web.AppKey("state", SandboxState)
# Whether valid web requests in the common form take validation_fast.py (the answers are
# the same either way; off, every request gets validation.py's checks: the reference).
WEB_FAST_PATH_KEY: Final = web.AppKey("web_fast_path", bool)
