"""The outbound codec: routing fields without decoding the payload, versions checked."""

from __future__ import annotations

import orjson
import pytest

from relay.formats.base import OutboundEvent
from relay.pipeline import outbound


def web_event(conversion_id: str = "c1") -> OutboundEvent:
    payload = {"event_id": "o87ne", "conversion_id": conversion_id, "identifiers": []}
    return OutboundEvent(kind="web", budget_key="18ce552mlaq", target="o8z6j", payload=payload)


def test_round_trip_keeps_routing_and_payload_bytes() -> None:
    event = web_event()
    routed = outbound.decode(outbound.encode(event))
    assert (routed.kind, routed.budget_key, routed.target) == ("web", "18ce552mlaq", "o8z6j")
    assert orjson.loads(routed.payload) == event.payload
    assert routed.payload_dict() == event.payload


def test_web_ledger_key_is_pixel_event_and_conversion_id() -> None:
    first = outbound.decode(outbound.encode(web_event("c1")))
    again = outbound.decode(outbound.encode(web_event("c1")))
    other = outbound.decode(outbound.encode(web_event("c2")))
    assert first.ledger_key == again.ledger_key != other.ledger_key
    assert len(first.ledger_key) == 32
    # X dedups per (event, conversion_id): another event of the same order is another key.
    event = web_event("c1")
    another = OutboundEvent(
        event.kind, event.budget_key, event.target, {**event.payload, "event_id": "o87nf"}
    )
    assert outbound.decode(outbound.encode(another)).ledger_key != first.ledger_key


def test_app_ledger_key_follows_the_conversion_or_the_source_id() -> None:
    params = {"app_id": "333903271", "conversion_type": "INSTALL", "hashed_device_id": "x"}
    a = OutboundEvent("app", "18ce54d4x5t", "333903271", dict(params))
    b = OutboundEvent("app", "18ce54d4x5t", "333903271", dict(reversed(params.items())))
    c = OutboundEvent("app", "18ce54d4x5t", "333903271", {**params, "conversion_type": "PURCHASE"})
    keys = [outbound.decode(outbound.encode(e)).ledger_key for e in (a, b, c)]
    assert keys[0] == keys[1] != keys[2]
    with_source = OutboundEvent("app", "18ce54d4x5t", "333903271", dict(params), ledger_key="s1")
    assert outbound.decode(outbound.encode(with_source)).ledger_key != keys[0]


def test_the_routing_line_carries_the_origin_timestamp_and_the_identifier_set() -> None:
    payload = {
        "event_id": "o87ne",
        "conversion_id": "c1",
        "identifiers": [{"hashed_email": "e"}, {"ip_address": "1.0.0.0", "user_agent": "u"}],
    }
    event = OutboundEvent(kind="web", budget_key="18ce552mlaq", target="o8z6j", payload=payload)
    routed = outbound.decode(outbound.encode(event, 1_700_000_000_123))
    assert routed.origin_ms == 1_700_000_000_123
    assert routed.identifiers == "email+ip_ua"
    assert outbound.decode(outbound.encode(event)).origin_ms == -1  # unknown


def test_a_label_outside_the_metrics_set_is_not_taken() -> None:
    routed = outbound.decode(b"R3 web a p k 12 customer-42\n{}")
    assert routed.identifiers is None  # counted from the payload instead
    assert routed.origin_ms == 12


def test_version_two_records_are_still_read() -> None:
    routed = outbound.decode(b"R2 web a1 p1 " + b"ab" * 16 + b"\n{}")
    assert (routed.kind, routed.budget_key, routed.target) == ("web", "a1", "p1")
    assert (routed.ledger_key, routed.payload) == ("ab" * 16, b"{}")
    assert (routed.origin_ms, routed.identifiers) == (-1, None)  # from the headers, the payload


def test_version_one_records_are_still_read() -> None:
    v1 = orjson.dumps(
        {"v": 1, "kind": "web", "budget_key": "a1", "target": "p1", "payload": {"x": 1}}
    )
    routed = outbound.decode(v1)
    assert (routed.kind, routed.budget_key, routed.target) == ("web", "a1", "p1")
    assert routed.payload_dict() == {"x": 1}


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"R9 web a p k\n{}",
        b"R2 web a p\n{}",
        b"R2 fax a p k\n{}",
        b"R2 web a p k",
        b"R3 web a p k 12\n{}",
        b"R3 web a p k soon email\n{}",
        b"R3 web a p k 12 email extra\n{}",
        b"R3 web a\xff p k 12 email\n{}",
        orjson.dumps({"v": 3, "kind": "web", "budget_key": "a", "target": "p", "payload": {}}),
        b"not json",
    ],
)
def test_unknown_versions_and_broken_framing_are_refused(value: bytes) -> None:
    with pytest.raises(outbound.UnknownOutbound):
        outbound.decode(value)


def test_routing_fields_must_not_break_the_framing() -> None:
    with pytest.raises(ValueError):
        outbound.encode(OutboundEvent("web", "bad key", "p1", {}))


def test_a_bundle_carries_each_event_as_its_own_r3_value() -> None:
    values = [outbound.encode(web_event(f"c{i}"), 1_700_000_000_000 + i) for i in range(3)]
    bundle = outbound.encode_bundle(values)
    assert bundle.startswith(outbound.BUNDLE_TAG)
    events = outbound.decode_all(bundle)
    assert [e.record for e in events] == values  # parked or dead-lettered alone: plain R3
    assert [e.payload_dict()["conversion_id"] for e in events] == ["c0", "c1", "c2"]
    assert [e.origin_ms for e in events] == [1_700_000_000_000 + i for i in range(3)]
    assert [e.ledger_key for e in events] == [outbound.decode(v).ledger_key for v in values]
    assert outbound.encode_bundle(values[:1]) == values[0]  # one event: no bundle
    assert outbound.decode_all(values[0]) == [outbound.decode(values[0])]


@pytest.mark.parametrize(
    "value",
    [
        b"R4 \n" + b"R3 web a p k 12 email\n{}",
        b"R4 2\n" + b"R3 web a p k 12 email\n{}",  # fewer parts than counted
        b"R4 1\n" + b"R3 web a p k 12 email\n{}\nR3 web a p k 12 email\n{}",  # more
        b"R4 2\n" + b"R3 web a p k 12 email\n{}\nR2 web a p k\n{}",  # a part of another version
        b"R4 1\n" + b"R3 web a p k 12 email",  # a part without its payload
        b"R4 1",
    ],
)
def test_broken_bundles_are_refused_whole(value: bytes) -> None:
    with pytest.raises(outbound.UnknownOutbound):
        outbound.decode_all(value)
    with pytest.raises(outbound.UnknownOutbound):
        outbound.decode(value)  # a reader of single events does not take a bundle for one
