"""`relay dlq redrive`: dead letters go back to their origin topic, filtered, once per pass,
up to the end seen at start, with a redrive count that stops endless loops."""

from __future__ import annotations

import asyncio

import orjson

from relay.config import load_settings
from relay.kafka import OutRecord
from relay.pipeline.dlq import Failure, Origin, dead_letter
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from relay.tools.redrive import describe, parse_filters, redrive
from tests.conftest import make_settings
from tests.kafka_helpers import produce_records, produce_values, read_all, wait_for


def header(record: object, name: str) -> str | None:
    for key, value in getattr(record, "headers", ()) or ():
        if key == name:
            return str(value.decode())
    return None


async def test_redrive_sends_matching_dead_letters_home_once(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = load_settings(
        {
            "RELAY_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "RELAY_TOPIC_PREFIX": topic_prefix,
            "RELAY_KAFKA_SESSION_TIMEOUT_MS": "2000",
        }
    )
    origin = f"{topic_prefix}.input.web"
    letters: list[OutRecord] = [
        dead_letter(
            settings.dlq_topic,
            f"bad-{i}".encode(),
            b"k",
            Failure("ingest", "invalid_json" if i % 2 else "invalid_event", "x"),
            Origin(origin, 0, i),
        )
        for i in range(6)
    ]
    await produce_records(kafka_bootstrap, letters)

    dry = await redrive(settings, filters=parse_filters(["class=invalid_json"]), dry_run=True)
    assert (dry.read, dry.redriven, dry.skipped) == (6, 3, 3)
    text = "\n".join(describe(dry, dry_run=True, max_redrives=settings.dlq_max_redrives))
    assert "would send back 3" in text and "nothing sent" in text
    assert "sent back" not in text.replace("would send back", "")

    first = await redrive(settings, filters=parse_filters(["class=invalid_json"]))
    assert (first.read, first.redriven, first.skipped) == (6, 3, 3)  # the dry run sent nothing
    back = await read_all(kafka_bootstrap, origin, 3)
    assert sorted(r.value for r in back) == [b"bad-1", b"bad-3", b"bad-5"]
    assert all(r.key == b"k" for r in back)
    assert all(header(r, "relay.redrive.count") == "1" for r in back)
    assert not any(
        k.startswith(("relay.error.", "relay.origin.")) for r in back for k, _ in r.headers
    )
    again = await redrive(settings)
    assert again.read == 0  # committed: nothing is redriven twice


async def test_redrive_under_a_running_worker_terminates_and_counts(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    """X keeps rejecting (403: an account the token may not use) and ingest keeps failing
    (unknown pixel): each pass sends each dead letter back once and stops at the end it saw;
    after RELAY_DLQ_MAX_REDRIVES passes, records are left alone unless forced."""
    # A refused account is probed with one event at a time: often here, so that each pass's
    # redriven events are refused (and dead-lettered) again within the test.
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        sandbox.url,
        RELAY_DLQ_MAX_REDRIVES="2",
        RELAY_TARGET_PROBE_S="0.2",
    )
    rejected = [
        orjson.dumps(
            {
                "pixel_id": "s7g8h",
                "event_id": "s1w01",
                "conversion_time": "2026-11-20T10:00:00.123Z",
                "conversion_id": f"forbidden-{i}",
                "email": "someone@example.com",
            }
        )
        for i in range(3)
    ]
    unknown = [orjson.dumps({"pixel_id": "zzzzz", "email": f"u{i}@example.com"}) for i in range(2)]
    await produce_values(kafka_bootstrap, next(iter(settings.inputs)), [*rejected, *unknown])
    letters = len(rejected) + len(unknown)

    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:

        def dead_lettered(n: int) -> bool:
            return task.done() or worker.metrics.total("relay_events_dead_lettered") >= n

        await wait_for(lambda: dead_lettered(letters), 60, "the first dead letters")
        classes = {
            header(r, "relay.error.class")
            for r in await read_all(kafka_bootstrap, settings.dlq_topic, letters)
        }
        assert classes == {"rejected", "unknown_pixel"}

        for count in (1, 2):
            result = await asyncio.wait_for(redrive(settings), 60)
            # Only what was there at start: the records it sent back and that fail again
            # meanwhile are not read in the same pass.
            assert (result.read, result.redriven, result.left_alone) == (letters, letters, 0)
            expected = letters * (count + 1)
            await wait_for(lambda n=expected: dead_lettered(n), 60, "failing again")  # type: ignore[misc]
            assert worker.metrics.total("relay_events_dead_lettered") == letters * (count + 1)
            dlq = await read_all(kafka_bootstrap, settings.dlq_topic, letters * (count + 1))
            newest = sorted(dlq, key=lambda r: (r.timestamp, r.offset))[-letters:]
            assert {header(r, "relay.redrive.count") for r in newest} == {str(count)}

        tired = await redrive(settings)
        assert (tired.read, tired.redriven, tired.left_alone) == (letters, 0, letters)
        forced = await redrive(
            settings, group=f"{topic_prefix}-again", force=True, filters={"redrive_count": "2"}
        )
        assert (forced.redriven, forced.skipped) == (letters, letters * 2)
        await wait_for(lambda: dead_lettered(letters * 4), 60, "the forced ones failing again")
    finally:
        stop.set()
        await task
