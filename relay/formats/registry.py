"""Which adapter serves which input format."""

from __future__ import annotations

from relay.errors import ConfigError
from relay.formats.adjust import adapt_adjust
from relay.formats.appsflyer import adapt_appsflyer
from relay.formats.base import Adapter
from relay.formats.branch import adapt_branch
from relay.formats.mobile import adapt_mobile
from relay.formats.segment import adapt_segment
from relay.formats.web import adapt_web

ADAPTERS: dict[str, Adapter] = {
    "web": adapt_web,
    "mobile": adapt_mobile,
    "appsflyer": adapt_appsflyer,
    "adjust": adapt_adjust,
    "branch": adapt_branch,
    "segment": adapt_segment,
}


def adapter_for(fmt: str) -> Adapter:
    try:
        return ADAPTERS[fmt]
    except KeyError:
        raise ConfigError(
            f"input format {fmt!r} is not available (available: {', '.join(sorted(ADAPTERS))})"
        ) from None
