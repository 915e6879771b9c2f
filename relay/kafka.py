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
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.group import LeaveGroupRequest

from relay.config import Settings
from relay.errors import BrokerError, ConfigError
from relay.kafka_security import explain_failure, kafka_options

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS: Final = 36
DEFAULT_PARTITIONS: Final = 8
KEY_PARTITION_CACHE_SIZE: Final = 100_000
# An answer of the broker to one produce or metadata request takes milliseconds; one not
# come in this long was dropped (see make_producer).
PRODUCER_ANSWER_TIMEOUT_MS: Final = 15_000
START_GRACE_S: Final = 5.0  # a cancelled client start may take this long to finish cleanly
DEFAULT_SESSION_TIMEOUT_MS: Final = 10_000
# The embedded broker (Tansu) answers a JoinGroup only once half of the group's session
# timeout has passed (in 1 s steps); 2000 makes that one step. Real Kafka refuses < 6000.
EMBEDDED_SESSION_TIMEOUT_MS: Final = 2_000
EMBEDDED_CLUSTER_ID: Final = "tansu_cluster"
MAX_HEARTBEAT_INTERVAL_MS: Final = 3_000
FETCH_MAX_WAIT_MS: Final = 100
# The embedded broker answers a waiting fetch only when it looks again: a record appended
# there was handed over after up to ~50 ms with a 100 ms wait, ~10 ms with 20 (twice per
# event: input -> ingest, outbound -> deliver). An idle stage then sends 50 fetches a second.
EMBEDDED_FETCH_MAX_WAIT_MS: Final = 20

Header = tuple[str, bytes]
KafkaTarget = Settings | str  # a str: bootstrap servers of a plaintext broker (embedded)


def connection_options(kafka: KafkaTarget) -> dict[str, Any]:
    return {"bootstrap_servers": kafka} if isinstance(kafka, str) else kafka_options(kafka)


async def _unreachable(kafka: KafkaTarget, exc: Exception, doing: str) -> BrokerError:
    if isinstance(kafka, str):
        return BrokerError(f"cannot reach Kafka at {kafka} to {doing}: {exc}")
    return await explain_failure(kafka, exc, doing)


# Not frozen: one is built per produced record, and frozen init costs ~2 us more.
@dataclass(slots=True)
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
    producer = AIOKafkaProducer(**options)
    # aiokafka's request timeout is both how long a batch may wait for the broker (long: the
    # worker holds records through a broker outage) and how long a connection waits for one
    # answer. A request the broker dropped then holds its connection, and every record
    # behind it, for minutes. The connections give up sooner and are renewed; the batch is
    # sent again on a new one (a copy on the outbound topic is a replay the ledger knows).
    producer.client._request_timeout_ms = min(
        options["request_timeout_ms"], PRODUCER_ANSWER_TIMEOUT_MS
    )
    return producer


def make_consumer(kafka: KafkaTarget, *topics: str, **extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **connection_options(kafka), **extra)


async def start_even_if_cancelled(
    consumer: AIOKafkaConsumer, grace_s: float = START_GRACE_S
) -> None:
    """`consumer.start()`, let finish (for at most `grace_s`) when the caller is cancelled:
    aiokafka leaves its bootstrap connection open when a start is cancelled midway, where
    the caller's `stop()` cannot close it."""
    starting = asyncio.ensure_future(consumer.start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(starting, grace_s)
        raise


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


@contextlib.asynccontextmanager
async def admin_client(
    kafka: KafkaTarget, shared: AIOKafkaAdminClient | None = None
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed after; `shared` (already started) is lent, not closed.

    Starting one costs a connection and a metadata round trip (~0.1 s on a busy machine):
    start-up does all its topic work with one.
    """
    if shared is not None:
        yield shared
        return
    admin = make_admin(kafka)
    try:
        try:
            await admin.start()
        except Exception as exc:
            raise await _unreachable(kafka, exc, "connect") from exc
        yield admin
    finally:
        await admin.close()


async def existing_topics(kafka: KafkaTarget, admin: AIOKafkaAdminClient | None = None) -> set[str]:
    try:
        async with admin_client(kafka, admin) as client:
            return set(await client.list_topics())
    except BrokerError:
        raise
    except Exception as exc:
        raise await _unreachable(kafka, exc, "list topics") from exc


async def ensure_topics(
    kafka: KafkaTarget,
    topics: Iterable[str | TopicSpec],
    partitions: int = DEFAULT_PARTITIONS,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    admin: AIOKafkaAdminClient | None = None,
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
    try:
        async with admin_client(kafka, admin) as client:
            existing = set(await client.list_topics())
            missing = [spec for name, spec in specs.items() if name not in existing]
            if not missing:
                return
            response = await client.create_topics(
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


async def partition_count(
    kafka: KafkaTarget, topic: str, admin: AIOKafkaAdminClient | None = None
) -> int | None:
    """How many partitions `topic` has, None when it does not exist."""
    try:
        async with admin_client(kafka, admin) as client:
            # Listed first: describing a missing topic may create it (auto.create.topics.enable).
            if topic not in set(await client.list_topics()):
                return None
            described = await client.describe_topics([topic])
    except BrokerError:
        raise
    except Exception as exc:
        raise await _unreachable(kafka, exc, f"describe {topic}") from exc
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


async def is_embedded_broker(kafka: KafkaTarget, admin: AIOKafkaAdminClient | None = None) -> bool:
    """Whether the broker is the embedded one (recognised by its cluster id)."""
    try:
        async with admin_client(kafka, admin) as client:
            cluster = await client.describe_cluster()
    except BrokerError:
        raise
    except Exception as exc:
        raise await _unreachable(kafka, exc, "describe the cluster") from exc
    return bool(cluster.get("cluster_id") == EMBEDDED_CLUSTER_ID)


async def session_timeout_for(
    kafka: KafkaTarget, configured: int | None, admin: AIOKafkaAdminClient | None = None
) -> int:
    """The consumer group session timeout: as configured, else chosen by the broker."""
    if configured is not None:
        return configured
    if await is_embedded_broker(kafka, admin):
        return EMBEDDED_SESSION_TIMEOUT_MS
    return DEFAULT_SESSION_TIMEOUT_MS


def group_options(
    session_timeout_ms: int | None, fetch_max_wait_ms: int | None = None
) -> dict[str, Any]:
    """AIOKafkaConsumer options of a group member (unset: real Kafka's safe default)."""
    session = session_timeout_ms or DEFAULT_SESSION_TIMEOUT_MS
    return {
        "session_timeout_ms": session,
        "heartbeat_interval_ms": min(MAX_HEARTBEAT_INTERVAL_MS, session // 3),
        # A fetch of an idle partition returns after this long at most (aiokafka's default
        # is 500); an idle consumer then sends 1000 / wait small fetches a second.
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS if fetch_max_wait_ms is None else fetch_max_wait_ms,
    }


@dataclass(frozen=True, slots=True)
class Membership:
    """Who a consumer was in its group, read before it stops."""

    group_id: str
    member_id: str
    generation: int


def membership_of(consumer: AIOKafkaConsumer) -> Membership | None:
    coordinator = getattr(consumer, "_coordinator", None)  # aiokafka keeps it private
    member_id = getattr(coordinator, "member_id", "")
    if coordinator is None or not member_id:
        return None
    return Membership(coordinator.group_id, member_id, coordinator.generation)


async def leave_if_still_member(kafka: KafkaTarget, membership: Membership | None) -> None:
    """Leave the group where a stopped consumer did not (best effort).

    aiokafka leaves its group on stop only at generation > 0 (real Kafka's first); the
    embedded broker starts at 0, so a stopped member stayed in the group until its session
    expired, and a restarted worker waited for that (20 s instead of 5 with the defaults).
    """
    if membership is None or membership.generation != 0:
        return
    client: AIOKafkaClient | None = None
    try:
        client = AIOKafkaClient(**connection_options(kafka))
        await client.bootstrap()
        node = await client.coordinator_lookup(0, membership.group_id)  # 0: a group
        await client.send(node, LeaveGroupRequest(membership.group_id, membership.member_id))
    except Exception as exc:  # the session ends by itself; only the restart is slower
        log.warning("could not leave group %s: %s", membership.group_id, exc)
    finally:
        if client is not None:
            await client.close()


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
            # aiokafka's client fetches the metadata of every topic until one is added by
            # name, then of the added ones only: a topic it already knew (from the first
            # fetch of all) then drops out at the next refresh, and a batch waiting for that
            # topic's leader waits forever. Every topic written to is added by name.
            await self._producer.client.add_topic(topic)
            parts = await self._producer.partitions_for(topic)
            count = len(parts)
            self._partitions[topic] = count
        return count

    def _partition_of(self, record: OutRecord, count: int) -> int:
        if record.partition is not None:
            return record.partition
        key = record.key
        if key is None:
            self._round_robin += 1
            return self._round_robin % count
        # Keys are budget keys (ad accounts): few, and murmur2 is pure Python.
        cache_key = (record.topic, key)
        partition = self._key_partitions.get(cache_key)
        if partition is None:
            if len(self._key_partitions) > KEY_PARTITION_CACHE_SIZE:
                self._key_partitions.clear()
            partition = self._key_partitions[cache_key] = partition_for_key(key, count)
        return partition

    async def send_many(self, records: Iterable[OutRecord]) -> list[asyncio.Future[Any]]:
        """Queue the records; the returned futures resolve when the broker acknowledged them."""
        groups: dict[tuple[str, int], list[OutRecord]] = {}
        counts, key_partitions = self._partitions, self._key_partitions
        for record in records:
            topic = record.topic
            count = counts.get(topic)
            if count is None:
                count = await self._partition_count(topic)
            # Inline lookup of the common case (a keyed record whose key was seen before).
            partition = record.partition
            if partition is None:
                partition = key_partitions.get((topic, record.key)) if record.key else None
                if partition is None:
                    partition = self._partition_of(record, count)
            group = groups.get((topic, partition))
            if group is None:
                group = groups[(topic, partition)] = []
            group.append(record)
        futures: list[asyncio.Future[Any]] = []
        producer = self._producer
        for (topic, partition), group in groups.items():
            batch = producer.create_batch()
            append = batch.append
            for record in group:
                headers = record.headers
                # aiokafka's record builder takes a list only; most records have no headers.
                header_list = headers if type(headers) is list else list(headers)
                if (
                    append(key=record.key, value=record.value, timestamp=None, headers=header_list)
                    is not None
                ):
                    continue
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                append = batch.append
                if (
                    append(key=record.key, value=record.value, timestamp=None, headers=header_list)
                    is not None
                ):
                    continue
                raise BrokerError(
                    f"a record of {len(record.value)} bytes does not fit in one producer batch"
                )
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def send_and_wait(self, records: Iterable[OutRecord]) -> None:
        futures = await self.send_many(records)
        if futures:
            await asyncio.gather(*futures)
