"""The typed keys under which the sandbox app holds its config and state."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from relay.sandbox.config import SandboxConfig
from relay.sandbox.state import SandboxState

CONFIG_KEY: Final = web.AppKey("config", SandboxConfig)
STATE_KEY: Final = web.AppKey("state", SandboxState)
