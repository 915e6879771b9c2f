"""The attribution record: X's answer to an app conversion, published on `<prefix>.attributions`.

    key   = app id ":" hashed device id
    value = {"conversion": <params as sent>, "twitter_attribution": ..., "tpn_attribution": ...,
             "mode": "record" | "check", "origin": {"topic", "partition", "offset"}}

The conversion is the request as sent: the device id is the HMAC, never the raw id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson

from relay.kafka import OutRecord

Mode = Literal["record", "check"]


def attribution_record(
    topic: str,
    params: Mapping[str, Any],
    answer: Mapping[str, Any],
    mode: Mode,
    origin: tuple[str, int, int],
) -> OutRecord:
    key = f"{params['app_id']}:{params['hashed_device_id']}".encode()
    value = {
        "conversion": dict(params),
        "twitter_attribution": answer.get("twitter_attribution"),
        "tpn_attribution": answer.get("tpn_attribution"),
        "mode": mode,
        "origin": {"topic": origin[0], "partition": origin[1], "offset": origin[2]},
    }
    return OutRecord(topic=topic, value=orjson.dumps(value), key=key)


def outcome(answer: Mapping[str, Any]) -> str:
    """For the metric: did X (or its audience platform) claim the conversion?"""
    claimed = answer.get("twitter_attribution") or answer.get("tpn_attribution")
    return "attributed" if claimed else "unattributed"
