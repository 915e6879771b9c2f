"""ISO 4217: the currency codes X takes in `price_currency`, from pycountry's copy of the
standard (maintained upstream, so that a withdrawn code stops passing). pycountry comes with
the `sandbox` extra: the relay's runtime image does not need it."""

from __future__ import annotations

from typing import Final

from relay.errors import ConfigError

try:
    import pycountry
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ConfigError(
        "relay sandbox needs the sandbox extra: pip install 'conversion-relay[sandbox]'"
    ) from exc

CODES: Final = frozenset(c.alpha_3 for c in pycountry.currencies)


def is_currency(code: str) -> bool:
    """Whether `code` is a current ISO 4217 alphabetic code (`EUR`, `USD`, `JPY`)."""
    return code in CODES
