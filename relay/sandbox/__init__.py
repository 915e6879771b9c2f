"""The X Ads API sandbox: an aiohttp emulator of X that the relay, the demo and tests call.

config.py           SandboxConfig: accounts, pixels, credentials, budgets
auth.py             OAuth 1.0a verification, X-Pixel-Token, account access
validation.py       X's rules for web conversions
state.py            journal, dedup memory, counters
web_conversions.py  POST /12/measurement/conversions/:pixel_id
control.py          /_sandbox/journal, config, stats, reset
app.py              create_app: routes, X's error bodies, counters
server.py           SandboxServer, run_sandbox
"""

from relay.sandbox.app import create_app
from relay.sandbox.config import (
    SandboxAccount,
    SandboxConfig,
    SandboxCredentials,
    SandboxPixel,
    load_sandbox_config,
)
from relay.sandbox.server import SandboxServer, run_sandbox

__all__ = [
    "SandboxAccount",
    "SandboxConfig",
    "SandboxCredentials",
    "SandboxPixel",
    "SandboxServer",
    "create_app",
    "load_sandbox_config",
    "run_sandbox",
]
