"""The ingest stage: input topics -> decode -> adapt -> validate/normalize/hash -> outbound.

    invalid                   -> <prefix>.dlq (stage=ingest, original bytes kept)
    opted out / not a conversion -> dropped, counted by reason
    valid                     -> <prefix>.outbound, keyed by the budget key (ad account);
                                 a chunk's web events of one account bundled in one record

An input offset is committed only after its outcome (outbound record or dead letter) was
acknowledged by the broker, or it was deliberately dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import APP_FORMATS, Settings
from relay.errors import InvalidEvent
from relay.formats.base import Adapter, NormalizeContext
from relay.formats.registry import adapter_for
from relay.kafka import BatchProducer, OutRecord
from relay.normalize.device_ids import redact_device_ids
from relay.observability.logs import OperationalLog
from relay.observability.metrics import Metrics
from relay.pipeline.consuming import ConsumerStage
from relay.pipeline.dlq import Failure, Origin, carried_headers, dead_letter
from relay.pipeline.ingest_chunk import ChunkBuilder
from relay.pipeline.membership import subscription
from relay.pipeline.redact import REDACTED_HEADER, redact

log = logging.getLogger(__name__)

MAX_CHUNKS_IN_FLIGHT: Final = 4


class Ingestor:
    """What the stage's records are read with (the normalization context, each input's
    adapter) and how an invalid one becomes its dead letter. No I/O."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.ctx = NormalizeContext(
            mapping=settings.mapping,
            default_phone_region=settings.default_phone_region,
            device_id_hmac_key=base64.b64decode(settings.device_id_hmac_key.reveal() or ""),
            device_id_case=settings.device_id_case,
            extra_device_ids=settings.extra_device_ids,
        )
        self._app_topics = {t for t, fmt in settings.inputs.items() if fmt in APP_FORMATS}
        self._adapters: dict[str, Adapter] = {
            topic: adapter_for(fmt) for topic, fmt in settings.inputs.items()
        }

    def adapter_of(self, topic: str) -> Adapter:
        return self._adapters[topic]

    def dead_letter(self, msg: ConsumerRecord, bad: InvalidEvent) -> OutRecord:
        settings = self.settings
        failure = Failure("ingest", bad.error_class, bad.message, field=bad.field)
        origin = Origin(msg.topic, msg.partition, msg.offset)
        value = msg.value or b""
        if msg.topic in self._app_topics:  # no raw device id on any topic we write
            value = redact_device_ids(value, self.ctx.device_id_hmac_key, self.ctx.device_id_case)
        headers = list(carried_headers(msg.headers))
        if settings.dlq_redact:
            value, rewritten = redact(value, settings.inputs[msg.topic], self.ctx)
            if rewritten:
                headers.append((REDACTED_HEADER, ",".join(rewritten).encode()))
        return dead_letter(settings.dlq_topic, value, msg.key, failure, origin, headers)


@dataclass(slots=True)
class _Chunk:
    """The runs of offsets one `handle` call finishes when its records are acknowledged, and
    the count of each kind they wrote."""

    runs: list[tuple[TopicPartition, int]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)


class IngestStage(ConsumerStage):
    stage = "ingest"

    def __init__(self, settings: Settings, producer: BatchProducer, metrics: Metrics):
        super().__init__(settings, metrics)
        self.producer = producer
        self.ingestor = Ingestor(settings)
        self._chunk_slots = asyncio.Semaphore(MAX_CHUNKS_IN_FLIGHT)
        self._pending_chunks: set[asyncio.Task[None]] = set()
        self._record_keys: dict[str, bytes] = {}  # budget key -> record key: accounts repeat
        self.ops = OperationalLog(log)

    def _dead_letter(self, msg: ConsumerRecord, bad: InvalidEvent) -> OutRecord:
        self.ops.dead_lettered(
            "ingest",
            bad.error_class,
            1,
            bad.message,
            origin=f"{msg.topic}/{msg.partition}/{msg.offset}",
        )
        return self.ingestor.dead_letter(msg, bad)

    def make_consumer(self) -> AIOKafkaConsumer:
        wanted = subscription(self.settings, "ingest")
        return self.new_consumer(wanted.topics, wanted.group_id)

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # The per-record work is ChunkBuilder's (compiled); here, offsets and counters per
        # chunk (one offset run per fetched partition).
        ingestor, metrics, tracker, settings = (
            self.ingestor,
            self.metrics,
            self.tracker,
            self.settings,
        )
        chunk = _Chunk()
        builder = ChunkBuilder(
            ingestor.ctx,
            settings.outbound_topic,
            settings.max_event_bytes,
            settings.outbound_bundle_events,
            self._record_keys,
            self._dead_letter,
        )
        consumed = 0
        for tp, messages in batch.items():
            if not messages:
                continue
            builder.add(messages, ingestor.adapter_of(tp.topic))
            first, last = messages[0].offset, messages[-1].offset
            tracker.register_run(tp, first, last, len(messages))
            chunk.runs.append((tp, first))
            consumed += len(messages)
        records = builder.close()
        chunk.kinds = builder.kinds
        drops, dead = builder.drops, builder.dead
        metrics.consumed.labels("ingest").inc(consumed)
        for reason, count in drops.items():
            metrics.dropped.labels(reason).inc(count)
        for error_class, count in dead.items():
            metrics.dead_lettered.labels("ingest", error_class).inc(count)
        await self._chunk_slots.acquire()
        try:
            futures = await self.producer.send_many(records)
        except BaseException:
            self._chunk_slots.release()
            raise
        task = asyncio.create_task(self._await_chunk(futures, chunk))
        self._pending_chunks.add(task)
        task.add_done_callback(self._pending_chunks.discard)

    async def _await_chunk(self, futures: list[asyncio.Future[Any]], chunk: _Chunk) -> None:
        try:
            if futures:
                await asyncio.gather(*futures)
        except Exception as exc:
            # The broker did not take them: never commit past them. Stop, so that a restart
            # reads them again from the last commit.
            self.fail(exc)
            return
        finally:
            self._chunk_slots.release()
        # Drops finish with their chunk too: a few milliseconds later, and in order.
        finish_run = self.tracker.finish_run
        for tp, first in chunk.runs:
            finish_run(tp, first)
        for kind, count in chunk.kinds.items():
            self.metrics.ingested.labels(kind).inc(count)

    async def drain(self, deadline_s: float, partitions: set[TopicPartition] | None = None) -> None:
        # Chunks mix partitions and take milliseconds: wait for all of them.
        if self._pending_chunks:
            await asyncio.wait(set(self._pending_chunks), timeout=deadline_s)
