"""The X Ads API: the async client, OAuth 1.0a signing, and the errors it raises.

The names below are imported on first use: `relay.xads.oauth` or `relay.xads.egress` alone
does not load the client (and aiohttp with it).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "AccountResource": "relay.xads.client",
    "AppConversionResult": "relay.xads.client",
    "Page": "relay.xads.client",
    "WebConversionsResult": "relay.xads.client",
    "XAdsClient": "relay.xads.client",
    "ApiError": "relay.xads.errors",
    "BadRequest": "relay.xads.errors",
    "Forbidden": "relay.xads.errors",
    "NotFound": "relay.xads.errors",
    "NotSent": "relay.xads.errors",
    "RateLimited": "relay.xads.errors",
    "RateLimitInfo": "relay.xads.errors",
    "ServerError": "relay.xads.errors",
    "TransportError": "relay.xads.errors",
    "Unauthorized": "relay.xads.errors",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'relay.xads' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
