"""The ingest stage: input topics -> decode -> adapt -> validate/normalize/hash -> outbound.

    invalid                   -> <prefix>.dlq (stage=ingest, original bytes kept)
    opted out / not a conversion -> dropped, counted by reason
    valid                     -> <prefix>.outbound, keyed by the budget key (ad account)

An input offset is committed only after its outcome (outbound record or dead letter) was
acknowledged by the broker, or it was deliberately dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import APP_FORMATS, Settings
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import Adapter, NormalizeContext
from relay.formats.registry import adapter_for
from relay.kafka import BatchProducer, OutRecord
from relay.normalize.device_ids import redact_device_ids
from relay.observability.latency import origin_timestamp_header
from relay.observability.logs import OperationalLog
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.consuming import ConsumerStage
from relay.pipeline.dlq import Failure, Origin, carried_headers, dead_letter
from relay.pipeline.redact import REDACTED_HEADER, redact

log = logging.getLogger(__name__)

MAX_CHUNKS_IN_FLIGHT: Final = 4


def decode_record(value: bytes | None, max_bytes: int) -> Any:
    """Bytes -> JSON value, or InvalidEvent with a machine-readable class."""
    if value is None or not value:
        raise InvalidEvent("empty record", error_class="invalid_json")
    if len(value) > max_bytes:
        raise InvalidEvent(
            f"record of {len(value)} bytes exceeds the maximum event size of {max_bytes}",
            error_class="too_large",
        )
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent(
                "record is not valid UTF-8", error_class="invalid_encoding"
            ) from None
        raise InvalidEvent(
            f"record is not valid JSON: {exc.msg}", error_class="invalid_json"
        ) from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input record: an outbound or dead-letter record, or a drop reason."""

    record: OutRecord | None = None
    kind: str | None = None  # of an outbound event
    drop_reason: str | None = None
    dead_letter_class: str | None = None
    dead_letter_message: str | None = None


class Ingestor:
    """The pure part of the stage: one input record -> one outcome. No I/O."""

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

    def process(self, msg: ConsumerRecord) -> Outcome:
        settings = self.settings
        try:
            event = self._adapters[msg.topic](
                decode_record(msg.value, settings.max_event_bytes), self.ctx
            )
        except DroppedEvent as drop:
            return Outcome(drop_reason=drop.reason)
        except InvalidEvent as bad:
            failure = Failure("ingest", bad.error_class, bad.message, field=bad.field)
            origin = Origin(msg.topic, msg.partition, msg.offset)
            value = msg.value or b""
            if msg.topic in self._app_topics:  # no raw device id on any topic we write
                value = redact_device_ids(
                    value, self.ctx.device_id_hmac_key, self.ctx.device_id_case
                )
            headers = list(carried_headers(msg.headers))
            if settings.dlq_redact:
                value, rewritten = redact(value, settings.inputs[msg.topic], self.ctx)
                if rewritten:
                    headers.append((REDACTED_HEADER, ",".join(rewritten).encode()))
            record = dead_letter(settings.dlq_topic, value, msg.key, failure, origin, headers)
            return Outcome(
                record=record, dead_letter_class=bad.error_class, dead_letter_message=bad.message
            )
        out = OutRecord(
            settings.outbound_topic,
            outbound.encode(event),
            key=event.budget_key.encode(),
            # end-to-end latency; the redrive count travels on
            headers=(origin_timestamp_header(msg.timestamp), *carried_headers(msg.headers)),
        )
        return Outcome(record=out, kind=event.kind)


class IngestStage(ConsumerStage):
    stage = "ingest"

    def __init__(self, settings: Settings, producer: BatchProducer, metrics: Metrics):
        super().__init__(settings, metrics)
        self.producer = producer
        self.ingestor = Ingestor(settings)
        self._chunk_slots = asyncio.Semaphore(MAX_CHUNKS_IN_FLIGHT)
        self._pending_chunks: set[asyncio.Task[None]] = set()
        self.ops = OperationalLog(log)

    def make_consumer(self) -> AIOKafkaConsumer:
        return self.new_consumer(list(self.settings.inputs), self.settings.ingest_group)

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        metrics, tracker = self.metrics, self.tracker
        records: list[OutRecord] = []
        done: list[tuple[TopicPartition, int]] = []
        kinds: Counter[str] = Counter()
        consumed = 0
        for tp, messages in batch.items():
            for msg in messages:
                consumed += 1
                tracker.register(tp, msg.offset)
                outcome = self.ingestor.process(msg)
                if outcome.record is None:
                    metrics.dropped.labels(outcome.drop_reason or "unknown").inc()
                    tracker.finish(tp, msg.offset)
                    continue
                if outcome.dead_letter_class is not None:
                    metrics.dead_lettered.labels("ingest", outcome.dead_letter_class).inc()
                    self.ops.dead_lettered(
                        "ingest",
                        outcome.dead_letter_class,
                        1,
                        outcome.dead_letter_message or "",
                        origin=f"{tp.topic}/{tp.partition}/{msg.offset}",
                    )
                else:
                    kinds[outcome.kind or "web"] += 1
                records.append(outcome.record)
                done.append((tp, msg.offset))
        metrics.consumed.labels("ingest").inc(consumed)
        await self._chunk_slots.acquire()
        futures = await self.producer.send_many(records)
        task = asyncio.create_task(self._await_chunk(futures, done, kinds))
        self._pending_chunks.add(task)
        task.add_done_callback(self._pending_chunks.discard)

    async def _await_chunk(
        self,
        futures: list[asyncio.Future[Any]],
        done: list[tuple[TopicPartition, int]],
        kinds: Counter[str],
    ) -> None:
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
        finish = self.tracker.finish
        for tp, offset in done:
            finish(tp, offset)
        for kind, count in kinds.items():
            self.metrics.ingested.labels(kind).inc(count)

    async def drain(self, deadline_s: float, partitions: set[TopicPartition] | None = None) -> None:
        # Chunks mix partitions and take milliseconds: wait for all of them.
        if self._pending_chunks:
            await asyncio.wait(set(self._pending_chunks), timeout=deadline_s)
