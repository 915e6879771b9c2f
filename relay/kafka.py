"""Kafka plumbing shared by the stages: clients, topic creation, batched producing.

Every client is made here from a `KafkaTarget`: the settings (TLS, SASL and client id from
`relay.kafka_security.kafka_options`), or a bare bootstrap string for the embedded,
plaintext broker of the demo and the tests.

Idempotent producers are used where the broker serves them (`start_producer`); the
embedded broker answers InitProducerId with an error, so `auto` falls back to plain acks=all.

`BatchProducer.send_many` is the hot path's way to write: records are packed into one
aiokafka batch per partition (`create_batch`/`send_batch`), so there is no per-record await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from relay.config import Settings
from relay.errors import BrokerError, ConfigError
from relay.kafka_security import explain_failure, kafka_options

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS: Final = 36
DEFAULT_PARTITIONS: Final = 8

Header = tuple[str, bytes]
KafkaTarget = Settings | str  # a str: bootstrap servers of a plaintext broker (embedded)


def connection_options(kafka: KafkaTarget) -> dict[str, Any]:
    return {"bootstrap_servers": kafka} if isinstance(kafka, str) else kafka_options(kafka)


async def _unreachable(kafka: KafkaTarget, exc: Exception, doing: str) -> BrokerError:
    if isinstance(kafka, str):
        return BrokerError(f"cannot reach Kafka at {kafka} to {doing}: {exc}")
    return await explain_failure(kafka, exc, doing)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce. `partition` None means: by key hash, else round robin."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[Header] = ()
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create when absent."""

    name: str
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


def make_producer(
    kafka: KafkaTarget, *, idempotent: bool = False, **extra: Any
) -> AIOKafkaProducer:
    # acks=all keeps the at-least-once promise: an offset is committed only after the broker
    # has the record. Idempotence (no duplicates from producer retries) where the broker can.
    options: dict[str, Any] = dict(
        **connection_options(kafka),
        enable_idempotence=idempotent,
        acks="all",
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        request_timeout_ms=30000,
    )
    options.update(extra)
    return AIOKafkaProducer(**options)


def make_consumer(kafka: KafkaTarget, *topics: str, **extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **connection_options(kafka), **extra)


def make_admin(kafka: KafkaTarget, **extra: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(kafka), **extra)


async def start_producer(
    kafka: KafkaTarget, idempotence: str = "auto", **extra: Any
) -> AIOKafkaProducer:
    """A started producer; `idempotence` is auto (on when the broker serves it), true, false;
    `extra`: aiokafka producer options."""
    if idempotence not in ("auto", "true"):
        producer = make_producer(kafka, **extra)
        await producer.start()
        return producer
    producer = make_producer(kafka, idempotent=True, **extra)
    sender_log = logging.getLogger("aiokafka.producer.sender")
    level = sender_log.level
    if idempotence == "auto":  # a refusal is expected there: no ERROR line for it
        sender_log.setLevel(logging.CRITICAL)
    try:
        await producer.start()  # asks the broker for a producer id (InitProducerId)
        return producer
    except KafkaError as exc:
        await producer.stop()
        if idempotence == "true":
            raise ConfigError(
                f"RELAY_KAFKA_IDEMPOTENCE=true but the broker refuses idempotent producers: {exc}"
            ) from exc
        log.warning(
            "the broker refuses idempotent producers (%s); producing with acks=all only", exc
        )
    finally:
        sender_log.setLevel(level)
    producer = make_producer(kafka, **extra)
    await producer.start()
    return producer


async def existing_topics(kafka: KafkaTarget) -> set[str]:
    admin = make_admin(kafka)
    try:
        await admin.start()
        return set(await admin.list_topics())
    except Exception as exc:
        raise await _unreachable(kafka, exc, "list topics") from exc
    finally:
        await admin.close()


async def ensure_topics(
    kafka: KafkaTarget,
    topics: Iterable[str | TopicSpec],
    partitions: int = DEFAULT_PARTITIONS,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the topics that do not exist yet (an existing topic is fine).

    A TopicSpec says everything; a plain name gets `partitions`, replication factor 1 (tests,
    tools) and its entry of `configs` (`cleanup.policy`, `retention.ms`, ...). Settings apply
    only to topics created here.
    """
    configs = configs or {}
    specs: dict[str, TopicSpec] = {}
    for topic in topics:
        spec = topic if isinstance(topic, TopicSpec) else TopicSpec(topic, partitions)
        if not isinstance(topic, TopicSpec) and topic in configs:
            spec = TopicSpec(topic, partitions, configs=configs[topic])
        specs.setdefault(spec.name, spec)
    admin = make_admin(kafka)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [spec for name, spec in specs.items() if name not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    topic_configs=dict(s.configs),
                )
                for s in missing
            ]
        )
        # Some brokers answer "already exists" in the response instead of raising.
        for topic, code, message in _topic_errors(response):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise BrokerError(f"cannot create topic {topic}: error {code} {message or ''}")
    except BrokerError:
        raise
    except Exception as exc:
        raise await _unreachable(kafka, exc, "create topics") from exc
    finally:
        await admin.close()


async def partition_count(kafka: KafkaTarget, topic: str) -> int | None:
    """How many partitions `topic` has, None when it does not exist."""
    admin = make_admin(kafka)
    try:
        await admin.start()
        # Listed first: describing a missing topic may create it (auto.create.topics.enable).
        if topic not in set(await admin.list_topics()):
            return None
        described = await admin.describe_topics([topic])
    except Exception as exc:
        raise await _unreachable(kafka, exc, f"describe {topic}") from exc
    finally:
        await admin.close()
    for entry in described:
        if entry.get("topic") == topic and entry.get("error_code", 0) == 0:
            return len(entry.get("partitions", [])) or None
    return None


async def ensure_topic_like(
    kafka: KafkaTarget, topic: str, like: str, configs: Mapping[str, str] | None = None
) -> int:
    """Create `topic` with as many partitions as `like` (created first when absent), so that
    partition p of both holds the same keys; refuses an existing `topic` whose count differs.
    Returns the partition count."""
    await ensure_topics(kafka, [like])
    count = await partition_count(kafka, like)
    if count is None:
        raise BrokerError(f"topic {like} does not exist")
    await ensure_topics(kafka, [topic], partitions=count, configs={topic: configs or {}})
    actual = await partition_count(kafka, topic)
    if actual != count:
        raise BrokerError(f"topic {topic} has {actual} partitions, {like} has {count}")
    return count


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    result = []
    for entry in getattr(response, "topic_errors", []):
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        result.append((topic, code, message))
    return result


def partition_for_key(key: bytes, partitions: int) -> int:
    # Kafka's default (murmur2) partitioner, so that any other producer of the topic agrees.
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class BatchProducer:
    """Produces many records with one batch per partition and no per-record await."""

    def __init__(self, producer: AIOKafkaProducer):
        self._producer = producer
        self._partitions: dict[str, int] = {}
        self._key_partitions: dict[tuple[str, bytes], int] = {}
        self._round_robin = 0

    async def _partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            parts = await self._producer.partitions_for(topic)
            count = len(parts)
            self._partitions[topic] = count
        return count

    async def send_many(self, records: Iterable[OutRecord]) -> list[asyncio.Future[Any]]:
        """Queue the records; the returned futures resolve when the broker acknowledged them."""
        groups: dict[tuple[str, int], list[OutRecord]] = {}
        for record in records:
            count = await self._partition_count(record.topic)
            if record.partition is not None:
                partition = record.partition
            elif record.key is not None:
                # Keys are budget keys (ad accounts): few, and murmur2 is pure Python.
                cache_key = (record.topic, record.key)
                partition = self._key_partitions.get(cache_key, -1)
                if partition < 0:
                    if len(self._key_partitions) > 100_000:
                        self._key_partitions.clear()
                    partition = partition_for_key(record.key, count)
                    self._key_partitions[cache_key] = partition
            else:
                self._round_robin += 1
                partition = self._round_robin % count
            groups.setdefault((record.topic, partition), []).append(record)
        futures: list[asyncio.Future[Any]] = []
        for (topic, partition), group in groups.items():
            batch = self._producer.create_batch()
            for record in group:
                headers = list(record.headers)
                if (
                    batch.append(
                        key=record.key, value=record.value, timestamp=None, headers=headers
                    )
                    is None
                ):
                    futures.append(
                        await self._producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = self._producer.create_batch()
                    if (
                        batch.append(
                            key=record.key, value=record.value, timestamp=None, headers=headers
                        )
                        is None
                    ):
                        raise BrokerError(
                            f"a record of {len(record.value)} bytes does not fit "
                            "in one producer batch"
                        )
            if batch.record_count():
                futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures

    async def send_and_wait(self, records: Iterable[OutRecord]) -> None:
        futures = await self.send_many(records)
        if futures:
            await asyncio.gather(*futures)
