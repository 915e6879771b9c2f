"""What the ingest consumer reads ahead, on the real broker: over a backlog, every input
partition's fetch answer waits in memory until it is read, so an answer stays small."""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from relay.kafka import OutRecord, ensure_topics, make_consumer
from relay.pipeline.membership import subscription
from tests.conftest import make_settings
from tests.kafka_helpers import produce_records

VALUE = b"x" * 600
BACKLOG = 13_000  # about 8 MB in one partition
DEADLINE_S = 30.0


async def test_one_fetch_answer_of_an_input_partition_is_about_a_mebibyte(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, "http://127.0.0.1:9")
    (topic,) = settings.inputs
    await ensure_topics(kafka_bootstrap, [topic])
    await produce_records(kafka_bootstrap, [OutRecord(topic, VALUE, partition=0)] * BACKLOG)
    wanted = subscription(settings, "ingest")
    consumer = make_consumer(
        kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", **wanted.options
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        deadline = time.monotonic() + DEADLINE_S
        first: list[object] = []
        while not first and time.monotonic() < deadline:
            first = (await consumer.getmany(tp, timeout_ms=500, max_records=1)).get(tp, [])
        assert first, "nothing fetched"
        # The rest of that one answer waits in the consumer (a partition with records
        # waiting is not fetched again): what one answer brought.
        rest = (await consumer.getmany(tp, timeout_ms=0, max_records=BACKLOG)).get(tp, [])
    finally:
        await consumer.stop()
    fetched_bytes = (1 + len(rest)) * len(VALUE)
    assert fetched_bytes <= 3 * 2**20, f"one answer held {fetched_bytes:,} bytes of records"
