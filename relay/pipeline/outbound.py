"""The outbound record codec: what ingest writes to `<prefix>.outbound` and deliver reads.

    value = b"R3 " kind " " budget_key " " target " " ledger_key " " origin_ms " " identifiers
            "\\n" payload-json

The routing fields come first, on one ASCII line, so that the deliver stage routes a record
(lane, target, duplicate check), measures its latency and counts its identifiers without
decoding its payload or reading headers; the payload is X's request entry as ready JSON (web:
one item of the `conversions` array, joined into the request body as bytes; app: the
`conversion_event` query parameters). Record key = the budget key.

- origin_ms: the input record's Kafka timestamp (end-to-end latency), -1 when unknown;
- identifiers: the payload's identifier set as the coverage metric labels it
  (`relay.observability.coverage`), e.g. `email+phone+ip_ua`.

Several web events of one account, written by one ingest chunk, travel as one record (a
bundle), so that Kafka's per-record costs (the producer's append, the consumer's record
objects, the deliver stage's offset bookkeeping) are paid once for up to
`RELAY_OUTBOUND_BUNDLE_EVENTS` of them:

    value = b"R4 " count "\n" R3-value "\n" R3-value ...

Each part is a whole R3 value (one routing line, one payload line: orjson writes no raw
newline), so that a part parked or dead-lettered on its own is an ordinary R3 record.

Versions 2 (`R2`: the first four fields, the origin timestamp in a header) and 1 (a JSON
object with `v: 1`) are still read, so that an upgrade does not dead-letter a backlog; any
other version is refused (`UnknownOutbound`).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from relay.formats.base import OutboundEvent
from relay.observability import coverage

VERSION_TAG: Final = b"R3 "
BUNDLE_TAG: Final = b"R4 "
VERSION_2_TAG: Final = b"R2 "
KINDS: Final = ("web", "app")
# label -> the same label: a decoded record keeps the one shared string, not its own copy
_LABELS: Final = {label: label for label in coverage.LABELS}
Kind = Literal["web", "app"]


class UnknownOutbound(ValueError):
    """An outbound record this release cannot read (unknown version or broken framing)."""


# Not frozen: one is built per delivered record, and frozen init costs ~2 us more.
@dataclass(slots=True)
class Routed:
    """An outbound record as the deliver stage sees it: routing fields plus payload bytes.

    The payload is `record[payload_at:]`, cut when it is sent: a held record costs its
    bytes once, not twice (thousands of accounts' backlogs are held at once)."""

    kind: Kind
    budget_key: str
    target: str
    ledger_key: str
    record: bytes  # the payload (payload_at 0) or the whole outbound record
    origin_ms: int = -1  # the input record's timestamp; -1: read it from the headers (R2)
    identifiers: str | None = None  # the coverage label; None: count it from the payload
    payload_at: int = 0

    @property
    def payload(self) -> bytes:
        """The ready JSON."""
        at = self.payload_at
        return self.record[at:] if at else self.record

    def payload_dict(self) -> dict[str, Any]:
        value = orjson.loads(self.payload)
        if not isinstance(value, dict):
            raise UnknownOutbound("outbound payload is not a JSON object")
        return value


def ledger_key_for(event: OutboundEvent, payload: bytes) -> str:
    """The key under which a delivered event is remembered (stable across replays).

    Web: the pixel, the event and X's own dedup key, conversion_id. App: X has no dedup key,
    so the key is derived from the conversion as sent (app, device, type, time, value, ...),
    unless the adapter gave a source event id.
    """
    if event.ledger_key:
        basis = f"{event.kind}\x1f{event.target}\x1f{event.ledger_key}".encode()
    elif event.kind == "web":
        # X counts one conversion per (event, conversion_id): two events of one order differ.
        payload_of = event.payload.get
        basis = (
            f"web\x1f{event.target}\x1f{payload_of('event_id', '')}"
            f"\x1f{payload_of('conversion_id', '')}"
        ).encode()
    else:
        basis = b"app\x1f" + event.target.encode() + b"\x1f" + payload
    return hashlib.sha256(basis).hexdigest()[:32]


def _check_field(value: str, name: str) -> None:
    if not value or " " in value or "\n" in value:
        raise ValueError(f"outbound {name} must be non-empty without spaces or newlines")


def encode(event: OutboundEvent, origin_ms: int = -1) -> bytes:
    """An adapter's event (and its input record's timestamp) -> the outbound record value."""
    kind = event.kind
    # Sorted keys for app payloads only: their ledger key hashes the payload bytes.
    if kind == "web":
        payload = orjson.dumps(event.payload)
    elif kind == "app":
        payload = orjson.dumps(event.payload, option=orjson.OPT_SORT_KEYS)
    else:
        raise ValueError(f"unknown outbound kind {kind!r}")
    budget_key, target = event.budget_key, event.target
    _check_field(budget_key, "budget_key")
    _check_field(target, "target")
    identifiers = event.identifiers or coverage.identifier_set(kind, event.payload)
    # One format and one encode of the routing line: this runs once per ingested event.
    head = (
        f"R3 {kind} {budget_key} {target} {ledger_key_for(event, payload)}"
        f" {origin_ms if origin_ms > 0 else -1} {identifiers}\n"
    )
    return head.encode() + payload


def encode_bundle(values: list[bytes]) -> bytes:
    """R3 values of one budget key -> one outbound record (the value itself when alone)."""
    if len(values) == 1:
        return values[0]
    return b"R4 %d\n" % len(values) + b"\n".join(values)


def decode_all(value: bytes | None) -> list[Routed]:
    """An outbound record value -> the events it carries (a bundle's: each its own R3
    value in `record`); `UnknownOutbound` for what it cannot read, as a whole."""
    if value and value.startswith(BUNDLE_TAG):
        return _decode_bundle(value)
    return [decode(value)]


def _decode_bundle(value: bytes) -> list[Routed]:
    counted = value.find(b"\n")
    count_text = value[len(BUNDLE_TAG) : counted]
    if counted < 0 or not count_text.isdigit():
        raise UnknownOutbound("outbound bundle framing is broken")
    events: list[Routed] = []
    at, end, find = counted + 1, len(value), value.find
    for _ in range(int(count_text)):
        payload_at = find(b"\n", at) + 1
        if payload_at == 0:
            raise UnknownOutbound("outbound bundle framing is broken")
        stop = find(b"\n", payload_at)
        if stop < 0:
            stop = end
        part = value[at:stop]
        if not part.startswith(VERSION_TAG):
            raise UnknownOutbound("outbound bundle part is not an R3 record")
        events.append(decode(part))
        at = stop + 1
    if at != end + 1 or not events:
        raise UnknownOutbound("outbound bundle framing is broken (its count is wrong)")
    return events


def decode(value: bytes | None) -> Routed:
    """An outbound record value -> `Routed`; `UnknownOutbound` for what it cannot read."""
    if not value:
        raise UnknownOutbound("empty outbound record")
    if value.startswith(VERSION_TAG):  # this runs once per delivered event
        head, _, payload = value.partition(b"\n")
        try:
            _, kind, budget_key, target, ledger_key, origin, identifiers = head.decode().split(" ")
        except (UnicodeDecodeError, ValueError):
            raise UnknownOutbound("outbound record framing is broken") from None
        if not payload or kind not in KINDS:
            raise UnknownOutbound("outbound record framing is broken or its kind is unknown")
        if origin.isascii() and origin.isdigit():
            origin_ms = int(origin)
        elif origin == "-1":
            origin_ms = -1
        else:
            raise UnknownOutbound("outbound origin timestamp is not a number")
        return Routed(
            kind,  # type: ignore[arg-type]
            # Interned: the records of one account or pixel share one string.
            sys.intern(budget_key),
            sys.intern(target),
            ledger_key,
            value,
            origin_ms,
            # A label of the metric's fixed set only: nothing else reaches a label value.
            _LABELS.get(identifiers),
            len(head) + 1,
        )
    if value.startswith(VERSION_2_TAG):
        return _decode_v2(value)
    if value[:1] == b"{":
        return _decode_v1(value)
    raise UnknownOutbound("outbound record of an unknown version")


def _decode_v2(value: bytes) -> Routed:
    head, _, payload = value.partition(b"\n")
    try:
        _, kind, budget_key, target, ledger_key = head.decode().split(" ")
    except (UnicodeDecodeError, ValueError):
        raise UnknownOutbound("outbound record framing is broken") from None
    if not payload or kind not in KINDS:
        raise UnknownOutbound("outbound record framing is broken or its kind is unknown")
    return Routed(kind, budget_key, target, ledger_key, payload)  # type: ignore[arg-type]


def _decode_v1(value: bytes) -> Routed:
    try:
        doc = orjson.loads(value)
        version, kind = doc["v"], doc["kind"]
        key, target, payload = doc["budget_key"], doc["target"], doc["payload"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise UnknownOutbound("outbound record is not a relay event") from None
    if version != 1 or kind not in KINDS or not isinstance(payload, dict):
        raise UnknownOutbound(f"outbound record of unknown version {version!r}")
    event = OutboundEvent(kind=kind, budget_key=str(key), target=str(target), payload=payload)
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS if kind == "app" else 0)
    return Routed(kind, event.budget_key, event.target, ledger_key_for(event, body), body)
