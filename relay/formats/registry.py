"""Which adapter serves which input format."""

from __future__ import annotations

from relay.errors import ConfigError
from relay.formats.base import Adapter
from relay.formats.web import adapt_web

ADAPTERS: dict[str, Adapter] = {"web": adapt_web}


def adapter_for(fmt: str) -> Adapter:
    try:
        return ADAPTERS[fmt]
    except KeyError:
        raise ConfigError(
            f"input format {fmt!r} is not available yet (available: {', '.join(sorted(ADAPTERS))})"
        ) from None
