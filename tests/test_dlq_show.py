"""`relay dlq show` / `inspect`: counts by stage, class and field, masked samples, filters."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson

from relay.config import load_settings
from relay.kafka import OutRecord
from relay.pipeline.dlq import Failure, Origin, dead_letter
from relay.tools.dlq_show import inspect_dlq, render_report
from tests.kafka_helpers import produce_records

# (stage, class, field, how many)
CLASSES = [
    ("ingest", "invalid_json", None, 1),
    ("ingest", "invalid_encoding", None, 2),
    ("ingest", "invalid_event", "email", 3),
    ("ingest", "too_large", None, 4),
    ("ingest", "unknown_pixel", "pixel_id", 5),
    ("deliver", "rejected", None, 6),
    ("deliver", "retries_exhausted", None, 7),
    ("deliver", "invalid_outbound", None, 1),
]
EVENT = {
    "pixel_id": "o8z6j",
    "email": "Jane.Doe@example.com",
    "phone": "+1 (212) 555-0100",
    "device_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    "value": "12.50",
}


def letters(dlq: str, origin: str) -> list[OutRecord]:
    records = []
    for stage, error_class, field, count in CLASSES:
        for i in range(count):
            value = (
                orjson.dumps(EVENT)
                if error_class != "invalid_json"
                else b"{Jane@x.com +12125550100"
            )
            failure = Failure(
                stage,
                error_class,
                f"{error_class} test",
                field=field,
                http_status=403 if error_class == "rejected" else None,
                api_code="UNAUTHORIZED_ACCOUNT" if error_class == "rejected" else None,
            )
            records.append(dead_letter(dlq, value, b"acct", failure, Origin(origin, 0, i)))
    return records


async def test_show_counts_every_class_and_masks_identifiers(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = load_settings(
        {"RELAY_KAFKA_BOOTSTRAP": kafka_bootstrap, "RELAY_TOPIC_PREFIX": topic_prefix}
    )
    await produce_records(kafka_bootstrap, letters(settings.dlq_topic, f"{topic_prefix}.in"))
    total = sum(n for *_, n in CLASSES)

    report = await inspect_dlq(settings, samples=100)
    assert report.read == report.matched == total
    assert dict(report.by_class) == {c: n for _, c, _, n in CLASSES}
    assert dict(report.by_stage) == {"ingest": 15, "deliver": 14}
    assert report.by_field["email"] == 3 and report.by_field["pixel_id"] == 5
    assert dict(report.by_api_code) == {"UNAUTHORIZED_ACCOUNT": 6}
    shown = orjson.dumps([s["value"] for s in report.samples]).decode()
    assert "Jane" not in shown and "555-0100" not in shown and "6D92078A" not in shown
    assert "2125550100" not in shown  # nor in a value that is not JSON
    assert "12.50" in shown  # only identifiers are masked
    assert all("relay.error.class" in s["headers"] for s in report.samples)

    clear = await inspect_dlq(settings, samples=1, show_pii=True, filters={"class": "rejected"})
    assert clear.matched == 6 and dict(clear.by_class) == {"rejected": 6}
    assert clear.samples[0]["value"]["email"] == "Jane.Doe@example.com"
    assert "rejected" in render_report(clear, settings.dlq_topic)

    # The command line, under its alias, as JSON; nothing is committed, so it reads all again.
    env = {
        **os.environ,
        "RELAY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RELAY_TOPIC_PREFIX": topic_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "dlq",
        "inspect",
        "--json",
        "--filter",
        "stage=ingest",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    doc = orjson.loads(out)
    assert doc["read"] == total and doc["matched"] == 15
    assert doc["by_class"]["unknown_pixel"] == 5
    assert "Jane" not in out.decode()
