"""BatchProducer.send_many on the real broker: key partitioning as Kafka's, headers kept,
chunks larger than one producer batch split, and order kept per partition."""

from __future__ import annotations

from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_producer, partition_for_key
from tests.kafka_helpers import read_all


async def test_records_land_by_key_with_their_headers_in_order(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.batch"
    await ensure_topics(kafka_bootstrap, [topic])
    keys = [b"18ce54d4x5t", b"18ce552mlaq", b"18ce55ab3cd"]
    big = b"x" * 300_000  # several of these overflow one 1 MiB producer batch
    records = [
        OutRecord(
            topic,
            b"%d:" % i + (big if i % 5 == 0 else b""),
            key=keys[i % 3],
            headers=[("n", b"%d" % i)] if i % 2 else (),
        )
        for i in range(60)
    ]
    records.append(OutRecord(topic, b"pinned", key=b"18ce54d4x5t", partition=7))
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        await BatchProducer(producer).send_and_wait(records)
    finally:
        await producer.stop()
    got = await read_all(kafka_bootstrap, topic, len(records))
    assert len(got) == len(records)
    pinned = [r for r in got if r.value == b"pinned"]
    assert [r.partition for r in pinned] == [7]
    seen: dict[bytes, list[int]] = {}
    for r in sorted((r for r in got if r.value != b"pinned"), key=lambda r: r.offset):
        assert r.key is not None and r.value is not None
        i = int(r.value.split(b":")[0])
        assert r.partition == partition_for_key(r.key, 8)
        assert list(r.headers) == ([("n", b"%d" % i)] if i % 2 else [])
        seen.setdefault(r.key, []).append(i)
    for numbers in seen.values():
        assert numbers == sorted(numbers)  # one key, one partition, the order it was sent in
