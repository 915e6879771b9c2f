"""ISO 4217: the currency codes X takes in `price_currency`, from pycountry's copy of the
standard (maintained upstream, so that a withdrawn code stops passing)."""

from __future__ import annotations

from typing import Final

import pycountry

CODES: Final = frozenset(c.alpha_3 for c in pycountry.currencies)


def is_currency(code: str) -> bool:
    """Whether `code` is a current ISO 4217 alphabetic code (`EUR`, `USD`, `JPY`)."""
    return code in CODES
