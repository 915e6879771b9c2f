"""`relay dlq redrive`: dead letters go back to their origin topic, filtered, once."""

from __future__ import annotations

from relay.config import load_settings
from relay.kafka import OutRecord
from relay.pipeline.dlq import Failure, Origin, dead_letter
from relay.tools.redrive import parse_filters, redrive
from tests.kafka_helpers import produce_records, read_all


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
    first = await redrive(settings, filters=parse_filters(["class=invalid_json"]))
    assert (first.read, first.redriven, first.skipped) == (6, 3, 3)
    back = await read_all(kafka_bootstrap, origin, 3)
    assert sorted(r.value for r in back) == [b"bad-1", b"bad-3", b"bad-5"]
    assert all(r.key == b"k" for r in back)
    assert not any(k.startswith("relay.") for r in back for k, _ in r.headers)
    again = await redrive(settings)
    assert again.read == 0  # committed: nothing is redriven twice
