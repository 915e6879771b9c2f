"""Topics: the relay creates only its own, with partitions, replication factor and retention
from the settings; a missing input topic stops the start with the reason; idempotent
producers where the broker serves them."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer

from relay.errors import ConfigError
from relay.kafka import ensure_topics, existing_topics, start_producer
from relay.pipeline.worker import Worker
from relay.topics import own_topics, prepare_topics
from tests.conftest import make_settings


async def partitions_of(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


async def test_a_missing_input_topic_is_an_error_and_is_never_created(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = make_settings(
        kafka_bootstrap, topic_prefix, "http://127.0.0.1:1", RELAY_INPUTS=f"{topic_prefix}.typo=web"
    )
    worker = Worker(settings, stage="ingest", serve_http=False)
    with pytest.raises(ConfigError, match=rf"input topic\(s\) {topic_prefix}.typo .*never creates"):
        await worker.run(asyncio.Event())
    topics = await existing_topics(kafka_bootstrap)
    assert f"{topic_prefix}.typo" not in topics
    assert worker.readiness() == (False, "starting")


async def test_own_topics_follow_the_settings(kafka_bootstrap: str, topic_prefix: str) -> None:
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        "http://127.0.0.1:1",
        RELAY_TOPIC_PARTITIONS=3,
        RELAY_TOPIC_REPLICATION_FACTOR=1,
        RELAY_DLQ_RETENTION_MS=86_400_000,
    )
    await prepare_topics(settings, ingest=False)  # a deliver-only worker checks no input
    names = [
        f"{topic_prefix}.{s}" for s in ("outbound", "dlq", "attributions", "delivered", "delayed")
    ]
    assert [t.name for t in own_topics(settings)] == names
    assert set(names) <= await existing_topics(kafka_bootstrap)
    assert f"{topic_prefix}.input.web" not in await existing_topics(kafka_bootstrap)
    for name in names:
        assert await partitions_of(kafka_bootstrap, name) == 3
    specs = {t.name: t for t in own_topics(settings)}
    assert specs[f"{topic_prefix}.dlq"].configs["retention.ms"] == "86400000"
    assert specs[f"{topic_prefix}.delivered"].configs == {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(2 * settings.ledger_window_s * 1000)),
    }


async def test_ledger_and_parking_topics_follow_an_existing_outbound(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = make_settings(
        kafka_bootstrap, topic_prefix, "http://127.0.0.1:1", RELAY_TOPIC_PARTITIONS=3
    )
    await ensure_topics(kafka_bootstrap, [settings.outbound_topic], partitions=5)
    await prepare_topics(settings, ingest=False)
    assert await partitions_of(kafka_bootstrap, settings.delivered_topic) == 5
    assert await partitions_of(kafka_bootstrap, settings.delayed_topic) == 5
    assert await partitions_of(kafka_bootstrap, settings.dlq_topic) == 3


async def test_idempotence_auto_falls_back_on_the_embedded_broker_and_true_refuses(
    kafka_bootstrap: str,
) -> None:
    producer = await start_producer(kafka_bootstrap, "auto")
    try:
        assert producer._txn_manager is None  # not idempotent
        await producer.send_and_wait("relay.idempotence.probe", b"x")
    finally:
        await producer.stop()
    with pytest.raises(ConfigError, match="RELAY_KAFKA_IDEMPOTENCE=true"):
        await start_producer(kafka_bootstrap, "true")


def test_topic_settings_are_validated() -> None:
    from relay.config import load_settings

    with pytest.raises(ConfigError, match="RELAY_TOPIC_PARTITIONS"):
        load_settings({"RELAY_TOPIC_PARTITIONS": "0"})
    with pytest.raises(ConfigError, match="RELAY_KAFKA_IDEMPOTENCE"):
        load_settings({"RELAY_KAFKA_IDEMPOTENCE": "maybe"})
