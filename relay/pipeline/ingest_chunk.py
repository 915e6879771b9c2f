"""One poll of the inputs -> the outbound records it makes: the ingest stage's per-record loop,
synchronous so that it compiles with the hot path (relay/hotpath.py).

A chunk's web events of one account, in order, go as one bundle record (outbound.py) until
the bundle is full; app events and records that carry headers (redriven ones) go one each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import orjson

from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import Adapter, NormalizeContext
from relay.kafka import Header, OutRecord
from relay.pipeline import outbound
from relay.pipeline.dlq import carried_headers

MAX_RECORD_KEYS: Final = 100_000
# A bundle stays well under the broker's default record limit (1 MiB), whatever its events.
BUNDLE_MAX_BYTES: Final = 256 * 1024

NO_HEADERS: Final[list[Header]] = []  # shared: the producer only reads it

# An invalid input record -> its dead letter (the stage's, which also logs and counts it).
DeadLetterer = Callable[[Any, InvalidEvent], OutRecord]


def outbound_headers(msg: Any) -> list[Header]:
    """The headers that travel on (the redrive count); a list, the producer's record builder
    takes no other sequence. The input's timestamp travels in the routing line."""
    if not msg.headers:  # most input records have none
        return NO_HEADERS
    return list(carried_headers(msg.headers))


def decode_record(value: bytes | None, max_bytes: int) -> Any:
    """Bytes -> JSON value, or InvalidEvent with a machine-readable class."""
    if value is None or not value:
        raise InvalidEvent("empty record", error_class="invalid_json")
    if len(value) > max_bytes:
        raise InvalidEvent(
            f"record of {len(value)} bytes exceeds the maximum event size of {max_bytes}",
            error_class="too_large",
        )
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent(
                "record is not valid UTF-8", error_class="invalid_encoding"
            ) from None
        raise InvalidEvent(
            f"record is not valid JSON: {exc.msg}", error_class="invalid_json"
        ) from None


class ChunkBuilder:
    """The records of one chunk, the count of each kind written, and of each drop reason."""

    def __init__(
        self,
        ctx: NormalizeContext,
        outbound_topic: str,
        max_event_bytes: int,
        bundle_events: int,
        record_keys: dict[str, bytes],
        dead_letter: DeadLetterer,
    ) -> None:
        self.ctx = ctx
        self.outbound_topic = outbound_topic
        self.max_event_bytes = max_event_bytes
        self.bundle_events = bundle_events
        self.record_keys = record_keys  # budget key -> record key: accounts repeat, kept
        self.dead_letter = dead_letter
        self.records: list[OutRecord] = []
        self.kinds: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self._bundles: dict[bytes, list[bytes]] = {}
        self._bundle_bytes: dict[bytes, int] = {}

    def add(self, messages: list[Any], adapter: Adapter) -> None:
        """One fetched partition's records, in order."""
        records, kinds, ctx = self.records, self.kinds, self.ctx
        max_bytes, topic, encode = self.max_event_bytes, self.outbound_topic, outbound.encode
        record_keys, bundles, sizes = self.record_keys, self._bundles, self._bundle_bytes
        bundling = self.bundle_events > 1
        for msg in messages:
            try:
                event = adapter(decode_record(msg.value, max_bytes), ctx)
            except DroppedEvent as drop:
                self.drops[drop.reason] += 1
                continue
            except InvalidEvent as bad:
                self.dead[bad.error_class] += 1
                records.append(self.dead_letter(msg, bad))
                continue
            budget_key = event.budget_key
            key = record_keys.get(budget_key)
            if key is None:
                if len(record_keys) >= MAX_RECORD_KEYS:
                    record_keys.clear()
                key = record_keys[budget_key] = budget_key.encode()
            kinds[event.kind] += 1
            value = encode(event, msg.timestamp)
            if bundling and not msg.headers and event.kind == "web":
                parts = bundles.get(key)
                if parts is None:
                    bundles[key] = [value]
                    sizes[key] = len(value)
                    continue
                size = sizes[key] + len(value)
                if len(parts) < self.bundle_events and size <= BUNDLE_MAX_BYTES:
                    parts.append(value)
                    sizes[key] = size
                    continue
                records.append(OutRecord(topic, outbound.encode_bundle(parts), key, NO_HEADERS))
                bundles[key] = [value]
                sizes[key] = len(value)
                continue
            records.append(OutRecord(topic, value, key, outbound_headers(msg)))

    def close(self) -> list[OutRecord]:
        """Every record of the chunk: the bundles still open go last."""
        for key, parts in self._bundles.items():
            self.records.append(
                OutRecord(self.outbound_topic, outbound.encode_bundle(parts), key, NO_HEADERS)
            )
        self._bundles.clear()
        return self.records
