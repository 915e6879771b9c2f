"""Every format RELAY_INPUTS accepts has an adapter (the settings check relies on it, so that
it need not import the adapters)."""

from __future__ import annotations

from relay.config import KNOWN_FORMATS
from relay.formats.registry import ADAPTERS


def test_every_known_format_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(KNOWN_FORMATS)
