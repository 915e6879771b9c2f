"""The attribution record: X's answer to an app conversion, published on `<prefix>.attributions`.

    key   = app id ":" hashed device id
    value = {"conversion": <params as sent>, "twitter_attribution": ..., "tpn_attribution": ...,
             "mode": "record" | "check", "origin": {"topic", "partition", "offset"}}

The conversion is the request as sent: the device id is the HMAC, never the raw id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from relay.kafka import BatchProducer, OutRecord

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


class AttributionPublisher:
    """Gathers the attribution records of concurrent app requests into one produce call
    every `linger_s` (one request per conversion must not mean one Kafka batch each);
    `publish` returns once the broker acknowledged its record."""

    def __init__(self, producer: BatchProducer, linger_s: float = 0.005):
        self._producer = producer
        self._linger_s = linger_s
        self._pending: list[tuple[OutRecord, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, record: OutRecord) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        await asyncio.sleep(self._linger_s)
        batch, self._pending, self._flusher = self._pending, [], None
        try:
            await self._producer.send_and_wait(record for record, _ in batch)
        except Exception as exc:  # each waiting request sees the broker's refusal
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
