"""RELAY_DLQ_REDACT: no raw email, phone, device id, IP or user agent in a dead letter, and a
redacted dead letter still delivers once its problem is fixed."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from relay.config import KNOWN_FORMATS, MappingFile, default_mapping_path, read_document
from relay.formats.base import NormalizeContext
from relay.normalize.device_ids import redact_device_ids
from relay.normalize.identifiers import hash_email, hash_phone
from relay.pipeline.redact import RULES, hash_device_id, redact
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from relay.tools.redrive import redrive
from tests.conftest import make_settings
from tests.kafka_helpers import produce_values, read_all, wait_for

KEY = b"k" * 32
CTX = NormalizeContext(MappingFile(), default_phone_region="US", device_id_hmac_key=KEY)
EMAIL, PHONE = "  Raw.Person@Example.com ", "+1 (650) 555-0100"
IDFA, ADID = "DD99CFF7-1C9B-4D0E-9F4B-6A8D5E0C1B2A", "38400000-8cf0-11bd-b23e-10b96e40000d"
IP, UA = "192.133.78.1", "Mozilla/5.0 (RawAgent)"
# The phone as written and as digits: a bare "650" also turns up in random topic names.
RAW = (
    b"Raw.Person",
    b"(650) 555",
    b"6505550100",
    b"DD99CFF7",
    b"38400000",
    IP.encode(),
    b"RawAgent",
)


def test_every_input_format_has_rules() -> None:
    assert set(RULES) == set(KNOWN_FORMATS)


@pytest.mark.parametrize(
    ("fmt", "record", "expected"),
    [
        (
            "web",
            {"email": EMAIL, "phone": PHONE, "ip_address": IP, "user_agent": UA, "value": "1"},
            {"hashed_email": hash_email(EMAIL), "hashed_phone_number": hash_phone(PHONE, "US")},
        ),
        (
            "mobile",
            {"device_id": IDFA, "device_ip_address": IP, "os_type": "ios"},
            {"device_id": hash_device_id(IDFA, CTX), "os_type": "ios"},
        ),
        (
            "appsflyer",
            {"idfa": IDFA, "advertising_id": None, "ip": IP, "idfv": IDFA, "platform": "ios"},
            {"idfa": hash_device_id(IDFA, CTX), "advertising_id": None},
        ),
        (
            "adjust",
            {"{gps_adid}": ADID, "idfa": "", "ip_address": IP, "os_name": "android"},
            {"{gps_adid}": hash_device_id(ADID, CTX), "idfa": ""},
        ),
        (
            "branch",
            {"user_data": {"aaid": ADID, "ip": IP, "user_agent": UA, "os": "Android"}},
            {"user_data": {"aaid": hash_device_id(ADID, CTX), "os": "Android"}},
        ),
        (
            "segment",
            {"context": {"ip": IP, "userAgent": UA, "traits": {"email": EMAIL, "phone": PHONE}}},
            {
                "context": {
                    "traits": {
                        "hashed_email": hash_email(EMAIL),
                        "hashed_phone_number": hash_phone(PHONE, "US"),
                    }
                }
            },
        ),
    ],
)
def test_pii_fields_become_hashes_or_go(
    fmt: str, record: dict[str, Any], expected: dict[str, Any]
) -> None:
    value, rewritten = redact(orjson.dumps(record), fmt, CTX)
    assert not any(raw in value for raw in RAW), value
    redacted = orjson.loads(value)
    for name, want in expected.items():
        assert redacted[name] == want
    assert rewritten and all("." in f or f in record for f in rewritten)


def test_what_cannot_be_hashed_is_dropped() -> None:
    record = {"email": "", "phone": "not a phone 650", "ip_address": IP, "value": "1"}
    value, rewritten = redact(orjson.dumps(record), "web", CTX)
    assert orjson.loads(value) == {"email": "", "value": "1"}  # empty: no PII, left as it was
    assert rewritten == ["phone", "ip_address"]
    no_key = NormalizeContext(MappingFile())
    value, _ = redact(orjson.dumps({"device_id": IDFA}), "mobile", no_key)
    assert orjson.loads(value) == {}
    for garbage in (b'{"email": "Raw.Person@Example.com", oops', b"[1, 2]", b"\xff\xfe"):
        assert redact(garbage, "web", CTX) == (b"", ["value"])


def test_device_ids_are_hashed_as_ingest_hashes_them() -> None:
    # hmac:<X's hashed_device_id>: base64 of the 32-byte HMAC-SHA256 digest, read back by
    # every app adapter as already hashed.
    hashed = hash_device_id(IDFA, CTX)
    assert hashed is not None and hashed.startswith("hmac:")
    assert len(base64.b64decode(hashed.removeprefix("hmac:"))) == 32
    assert redact_device_ids(IDFA.encode(), KEY, CTX.device_id_case).decode() == hashed
    assert hash_device_id(hashed, CTX) == hashed  # what ingest already redacted stays
    zero = "00000000-0000-0000-0000-000000000000"
    assert hash_device_id(zero, CTX) == zero  # no one's id: it makes the record dropped


def web_event(**fields: Any) -> dict[str, Any]:
    return {
        "pixel_id": "o8z6j",
        "event_id": "o87ne",
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "email": EMAIL,
        "phone": PHONE,
        "ip_address": IP,
        "user_agent": UA,
        **fields,
    }


async def settle(worker: Worker, done: Any, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: task.done() or done(worker), 60, what)
    finally:
        stop.set()
        await task


async def test_redacted_dead_letters_hold_no_raw_pii_and_still_deliver(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The relay's mapping lacks pixel p1a2b (the sandbox knows it): its events dead-letter.
    document = read_document(default_mapping_path())
    document["pixels"] = [p for p in document["pixels"] if p["id"] != "p1a2b"]
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump(document))
    settings = make_settings(
        kafka_bootstrap, topic_prefix, sandbox.url, RELAY_CONFIG=partial, RELAY_DLQ_REDACT="true"
    )
    topic = next(iter(settings.inputs))
    bad_field = web_event(conversion_id="fix-me", number_items="many")
    unknown_pixel = web_event(conversion_id="redrive-me", pixel_id="p1a2b", event_id="p9x01")
    values = [
        orjson.dumps(bad_field),
        orjson.dumps(unknown_pixel),
        b'{"email": "Raw.Person@Example.com", "phone": "+16505550100", oops',
    ]
    await produce_values(kafka_bootstrap, topic, values)
    worker = Worker(settings, serve_http=False)
    await settle(worker, lambda w: w.metrics.total("relay_events_dead_lettered") >= 3, "3 DLQ")

    dead = await read_all(kafka_bootstrap, settings.dlq_topic, 3)
    assert len(dead) == 3
    for record in dead:
        everything = record.value + b"".join(k.encode() + v for k, v in record.headers)
        assert not any(raw in everything for raw in RAW), everything
    by_id = {orjson.loads(r.value).get("conversion_id"): r for r in dead if r.value}
    assert set(by_id) == {"fix-me", "redrive-me"}
    redacted = orjson.loads(by_id["fix-me"].value)
    assert redacted["hashed_email"] == hash_email(EMAIL)
    assert "relay.redacted" in dict(by_id["fix-me"].headers)

    # Fixed: the operator repairs the bad field, and the mapping learns the pixel.
    redacted["number_items"] = 2
    await produce_values(kafka_bootstrap, topic, [orjson.dumps(redacted)])
    fixed = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_CONFIG=default_mapping_path(),
        RELAY_DLQ_REDACT="true",
    )
    summary = await redrive(fixed, filters={"class": "unknown_pixel"})
    assert summary.redriven == 1
    worker = Worker(fixed, serve_http=False)
    await settle(worker, lambda w: w.metrics.total("relay_events_delivered") >= 2, "2 delivered")

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.url}/_sandbox/journal") as answer,
    ):
        conversions = [e["conversion"] for e in (await answer.json())["conversions"]]
    assert {c["conversion_id"] for c in conversions} == {"fix-me", "redrive-me"}
    for conversion in conversions:
        identifiers = conversion["identifiers"]
        assert {"hashed_email": hash_email(EMAIL)} in identifiers
        assert {"hashed_phone_number": hash_phone(PHONE, "US")} in identifiers
        assert not any("ip_address" in i for i in identifiers)  # dropped with the raw PII
