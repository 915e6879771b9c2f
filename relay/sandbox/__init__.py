"""The X Ads API sandbox: an emulator of X (an aiohttp application, served by an HTTP server
of its own) that the relay, the demo and tests call.

config.py           SandboxConfig: accounts, pixels, apps, engagements, credentials, budgets,
                    read by the sandbox itself (never with the relay's parser)
seeds.py            the management resources the config starts with (tags, lists, providers)
oauth1.py           OAuth 1.0a HMAC-SHA1 verification from RFC 5849 (not the relay's signer)
auth.py             who may call: OAuth 1.0a, X-Pixel-Token, account access and lock-out
replay.py           OAuth timestamp freshness and nonce replay memory
validation.py       X's rules for web conversions
validation_fast.py  the well-formed web batch, accepted in one pass (else validation.py)
mact_params.py      X's rules for the MACT query parameters
currencies.py       ISO 4217 codes
web_conversions.py  POST /12/measurement/conversions/:pixel_id
mact.py             POST /12/conversion_event, GET /12/conversion_attribution
resources.py        app event tags, app lists, app event provider configurations
attribution.py      the deterministic attribution model (engagements, windows)
limits.py           per-account event budgets and per-token request budgets
metering.py         the rate-limit headers and 429s on X's routes
capacity.py         503 OVER_CAPACITY past the requests served at once
faults.py           Faults: what to inject, and the seeded dice
fault_middleware.py injecting them on X's routes (never on /_sandbox/*)
state.py            journals, dedup memory, counters
access.py           tokens revoked and accounts, pixels, apps denied at run time
control.py          /_sandbox/journal, config, stats, reset, faults, access, early-requests,
                    engagements
edge.py             the one middleware: capacity, faults, X's error bodies, counters, budgets
app.py              create_app: routes and the edge
http11.py           the sandbox's own HTTP/1.1 server (asyncio.Protocol over httptools)
routing.py          its fast path: X's conversion endpoints run on a FastRequest
aiohttp_bridge.py   every other request answered by the aiohttp application, in process
server.py           SandboxServer, run_sandbox (own server with httptools, uvloop when
                    installed; aiohttp's own server without httptools)
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
