"""The producer keeps the metadata of every topic the relay writes to: aiokafka's client
fetches all topics until one is added by name, then only the added ones, so a topic known
from the first fetch (the outbound topic) dropped out at the next refresh once a topic
created later (the delivered ledger, the DLQ) was written to, and a batch waiting for its
leader waited forever."""

from __future__ import annotations

from relay.kafka import BatchProducer, OutRecord, ensure_topics, start_producer


async def test_a_topic_written_before_another_was_created_stays_in_the_metadata(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    early, late = f"{topic_prefix}.early", f"{topic_prefix}.late"
    await ensure_topics(kafka_bootstrap, [early], partitions=2)
    producer = await start_producer(kafka_bootstrap, "false")
    try:
        batches = BatchProducer(producer)
        await batches.send_and_wait([OutRecord(early, b"1", key=b"a")])
        await ensure_topics(kafka_bootstrap, [late], partitions=2)
        await batches.send_and_wait([OutRecord(late, b"2", key=b"a")])
        await producer.client.force_metadata_update()  # what a periodic refresh does
        assert early in producer.client.cluster.topics()
        assert producer.client.cluster.partitions_for_topic(early) == {0, 1}
    finally:
        await producer.stop()
