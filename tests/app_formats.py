"""What the app-format tests share: a known partner key and an independent HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from relay.config import default_mapping_path, load_mapping
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import Adapter, NormalizeContext, OutboundEvent

KEY = b"relay-test-partner-key-32-bytes!"
KEY_B64 = base64.b64encode(KEY).decode()
IDFA = "DD99CFF7-1C9B-4D0E-9F4B-6A8D5E0C1B2A"
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
ZERO = "00000000-0000-0000-0000-000000000000"
MAPPING = load_mapping(default_mapping_path())
CTX = NormalizeContext(mapping=MAPPING, device_id_hmac_key=KEY)


def independent_hmac(device_id: str, key: bytes = KEY) -> str:
    """The expected hashed_device_id, computed without the relay's helper."""
    return base64.b64encode(hmac.new(key, device_id.encode(), hashlib.sha256).digest()).decode()


def dropped(adapter: Adapter, record: Any, ctx: NormalizeContext = CTX) -> str:
    with pytest.raises(DroppedEvent) as err:
        adapter(record, ctx)
    return err.value.reason


def invalid(adapter: Adapter, record: Any, ctx: NormalizeContext = CTX) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as err:
        adapter(record, ctx)
    return err.value


def no_raw_device_id(event: OutboundEvent, *raw: str) -> bool:
    text = repr(event).lower()
    return not any(r.lower() in text for r in raw)
