"""The deliver stage: outbound topic -> per-account lane -> token bucket -> batch -> X.

    2xx            -> done (offsets finish)
    400 on a batch -> split in halves until the invalid events stand alone; only they DLQ
    401            -> hold everything, retry as a probe every `AUTH_PROBE_S`; no DLQ flood
    403 / 404      -> dead-letter the batch with X's code (class `rejected`)
    429            -> the account waits until X's reset time; not counted as an attempt
    retryable      -> backoff with full jitter (or X's Retry-After); after `max_attempts`
                      dead-letter with class `retries_exhausted`

A delivery offset finishes only after X answered 2xx or the dead letter was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import Settings
from relay.kafka import BatchProducer
from relay.observability.latency import origin_timestamp_ms
from relay.observability.logs import OperationalLog
from relay.observability.metrics import Metrics
from relay.pipeline import outbound
from relay.pipeline.batching import Batch, Lane, Pending
from relay.pipeline.consuming import ConsumerStage
from relay.pipeline.dlq import Failure, Origin, carried_headers, dead_letter
from relay.pipeline.ratelimit import TokenBucket
from relay.pipeline.retry import full_jitter_delay
from relay.xads.client import XAdsClient
from relay.xads.errors import (
    ApiError,
    BadRequest,
    RateLimited,
    Unauthorized,
)

log = logging.getLogger(__name__)

AUTH_PROBE_S: Final = 30.0
WEB_ENDPOINT: Final = "measurement/conversions"


class DeliverStage(ConsumerStage):
    stage = "deliver"

    def __init__(
        self,
        settings: Settings,
        producer: BatchProducer,
        client: XAdsClient,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        auth_probe_s: float = AUTH_PROBE_S,
    ):
        super().__init__(settings, metrics)
        self.producer = producer
        self.client = client
        self.clock = clock
        self.auth_probe_s = auth_probe_s
        self.credentials_rejected = False
        self.lanes: dict[str, Lane] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._requests = asyncio.Semaphore(settings.max_in_flight_requests)
        self._progress = asyncio.Event()
        self._draining = False
        self.ops = OperationalLog(log)

    def make_consumer(self) -> AIOKafkaConsumer:
        return self.new_consumer([self.settings.outbound_topic], self.settings.deliver_group)

    # -- intake -------------------------------------------------------------------------

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        tracker = self.tracker
        undecodable: list[tuple[TopicPartition, ConsumerRecord]] = []
        touched: set[str] = set()
        count = 0
        for tp, messages in batch.items():
            for msg in messages:
                count += 1
                tracker.register(tp, msg.offset)
                try:
                    routed = outbound.decode(msg.value)
                except outbound.UnknownOutbound:
                    undecodable.append((tp, msg))
                    continue
                key = routed.budget_key
                timestamp_ms = origin_timestamp_ms(msg.headers, msg.timestamp)
                self._lane(key).add(
                    routed.kind,
                    routed.target,
                    Pending(
                        tp,
                        msg.offset,
                        msg.key,
                        msg.value,
                        routed.payload_dict(),
                        timestamp_ms,
                        carried_headers(msg.headers),
                    ),
                )
                touched.add(key)
        self.metrics.consumed.labels("deliver").inc(count)
        for key in touched:
            self._wakeups[key].set()
        for tp, msg in undecodable:
            item = Pending(tp, msg.offset, msg.key, msg.value or b"", {})
            await self._dead_letter(
                None,
                [item],
                Failure("deliver", "invalid_outbound", "outbound record is not a relay event"),
            )
        self.metrics.buffered.set(tracker.in_flight())

    def _lane(self, key: str) -> Lane:
        lane = self.lanes.get(key)
        if lane is None:
            settings = self.settings
            # Starts empty: a new owner of the account cannot know what the last one spent.
            bucket = TokenBucket(settings.account_limit, settings.account_window_s, self.clock)
            lane = self.lanes[key] = Lane(
                key,
                bucket,
                min(settings.web_batch_size, settings.account_limit),
                settings.linger_s,
            )
            self._wakeups[key] = asyncio.Event()
            self._tasks[key] = asyncio.create_task(
                self._run_lane(lane), name=f"lane-{len(self.lanes)}"
            )
        return lane

    # -- the lane loop: batch, wait for budget, send ----------------------------------------

    async def _run_lane(self, lane: Lane) -> None:
        wakeup = self._wakeups[lane.key]
        try:
            while True:
                next_due = lane.flush_due(self.clock(), everything=self._draining)
                if not lane.ready:
                    wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), next_due)
                    continue
                batch = lane.ready[0]
                wait = lane.bucket.wait_time(len(batch.items))
                if wait > 0:
                    self.metrics.ratelimit_wait.inc(wait)
                    await asyncio.sleep(wait)
                    continue
                lane.bucket.take(len(batch.items))
                lane.ready.popleft()
                async with self._requests:
                    delay = await self._send(lane, batch)
                if delay > 0:
                    await asyncio.sleep(delay)
        except Exception as exc:  # a bug or a broken broker: stop rather than lose events
            self.fail(exc)

    async def _send(self, lane: Lane, batch: Batch) -> float:
        """One attempt; returns how long the lane should pause before its next send."""
        now = time.time()
        batch.attempts += 1
        batch.first_attempt_at = batch.first_attempt_at or now
        if batch.kind != "web":
            await self._dead_letter(
                lane,
                batch.items,
                self._failure_for(
                    batch, "unsupported_kind", f"{batch.kind} delivery is not supported yet"
                ),
            )
            return 0.0
        started = time.monotonic()
        try:
            result = await self.client.post_web_conversions(
                batch.target,
                [p.payload for p in batch.items],
                use_pixel_token=self.settings.use_pixel_token,
            )
        except ApiError as err:
            self.metrics.api_requests.labels(WEB_ENDPOINT, str(err.status or "error")).inc()
            return await self._on_error(lane, batch, err)
        finally:
            self.metrics.api_latency.labels(WEB_ENDPOINT).observe(time.monotonic() - started)
        self.metrics.api_requests.labels(WEB_ENDPOINT, "200").inc()
        self.metrics.batch_size.labels("web").observe(len(batch.items))
        self.metrics.observe_delivered(
            "web",
            [p.payload for p in batch.items],
            [p.timestamp_ms for p in batch.items],
            account=lane.key,
        )
        if self.credentials_rejected:
            log.info("X accepts the credentials again; delivery resumes")
            self.credentials_rejected = False
            self.metrics.credentials_ok.set(1)
        limits = result.rate_limit
        if limits.remaining is not None:
            reset_in = limits.reset_epoch_s - time.time() if limits.reset_epoch_s else None
            lane.bucket.observe_server(limits.remaining, reset_in)
        self._finish(lane, batch.items)
        return 0.0

    async def _on_error(self, lane: Lane, batch: Batch, err: ApiError) -> float:
        if isinstance(err, Unauthorized):
            if not self.credentials_rejected:
                log.error("X rejects the credentials (401 %s); holding all delivery", err.code)
            self.credentials_rejected = True
            self.metrics.credentials_ok.set(0)
            batch.attempts -= 1  # the credentials, not the events, are at fault
            lane.ready.appendleft(batch)
            return self.auth_probe_s
        if isinstance(err, RateLimited):
            batch.attempts -= 1
            wait = self._server_wait(err) or self._backoff(1)
            lane.bucket.block_for(wait)
            lane.ready.appendleft(batch)
            self.metrics.retries.labels("rate_limited").inc()
            self.ops.rate_limited(lane.key, wait, batch.target)
            return 0.0
        if isinstance(err, BadRequest) and len(batch.items) > 1:
            # No partial success on web batches: bisect until the bad events stand alone.
            first, second = batch.split()
            lane.ready.appendleft(second)
            lane.ready.appendleft(first)
            self.metrics.retries.labels("split").inc()
            self.ops.split(lane.key, batch.target, len(batch.items), err.code)
            return 0.0
        if not err.retryable:
            if err.status in (403, 404):
                self.ops.target_stopped(lane.key, batch.target, err.status, err.code)
            await self._dead_letter(
                lane, batch.items, self._failure_for(batch, "rejected", err.message, err)
            )
            return 0.0
        if batch.attempts >= self.settings.max_attempts:
            await self._dead_letter(
                lane, batch.items, self._failure_for(batch, "retries_exhausted", err.message, err)
            )
            return 0.0
        lane.ready.appendleft(batch)
        self.metrics.retries.labels("error").inc()
        delay = max(self._server_wait(err) or 0.0, self._backoff(batch.attempts))
        log.info(
            "deliver: %s; %d events again in %.2fs (attempt %d of %d)",
            err,
            len(batch.items),
            delay,
            batch.attempts,
            self.settings.max_attempts,
        )
        return delay

    def _backoff(self, attempt: int) -> float:
        settings = self.settings
        return full_jitter_delay(attempt, base_s=settings.retry_base_s, cap_s=settings.retry_max_s)

    @staticmethod
    def _server_wait(err: ApiError) -> float | None:
        """X's own wait: Retry-After, or the reset time when the budget is spent.

        A reset time next to remaining budget is no retry hint: it is the window's end.
        """
        info = err.rate_limit
        if info.retry_after_s is not None:
            return info.retry_after_s
        spent = isinstance(err, RateLimited) or info.remaining == 0
        if spent and info.reset_epoch_s is not None:
            return max(0.0, info.reset_epoch_s - time.time())
        return None

    @staticmethod
    def _failure_for(
        batch: Batch, error_class: str, message: str, err: ApiError | None = None
    ) -> Failure:
        return Failure(
            "deliver",
            error_class,
            message,
            field=err.parameter if err else None,
            http_status=err.status if err else None,
            api_code=err.code if err else None,
            attempts=batch.attempts,
            first_attempt_at=batch.first_attempt_at,
            last_attempt_at=time.time(),
        )

    async def _dead_letter(self, lane: Lane | None, items: list[Pending], failure: Failure) -> None:
        dlq = self.settings.dlq_topic
        records = [
            dead_letter(
                dlq,
                p.value,
                p.key,
                failure,
                Origin(p.tp.topic, p.tp.partition, p.offset),
                p.headers,
            )
            for p in items
        ]
        await self.producer.send_and_wait(records)
        self.metrics.dead_lettered.labels("deliver", failure.error_class).inc(len(items))
        self.ops.dead_lettered(
            "deliver",
            failure.error_class,
            len(items),
            failure.message,
            account=lane.key if lane else None,
            status=failure.http_status,
            code=failure.api_code,
        )
        self._finish(lane, items)

    def _finish(self, lane: Lane | None, items: list[Pending]) -> None:
        finish = self.tracker.finish
        for p in items:
            finish(p.tp, p.offset)
        if lane is not None:
            lane.done(len(items))
        self.metrics.buffered.set(self.tracker.in_flight())
        self._progress.set()

    # -- drain, revoke, close ---------------------------------------------------------------

    async def drain(self, deadline_s: float, partitions: set[TopicPartition] | None = None) -> None:
        """Send what is held now (no linger) until none of `partitions` (default: all) is in
        flight, or the deadline."""
        deadline = time.monotonic() + deadline_s
        self._draining = True
        try:
            for wakeup in self._wakeups.values():
                wakeup.set()
            while self.tracker.in_flight(partitions) and self._failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "deliver: %d events not finished at the deadline; they will be read again",
                        self.tracker.in_flight(partitions),
                    )
                    break
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), remaining)
        finally:
            self._draining = False

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        await super().on_revoked(revoked)
        for key, lane in list(self.lanes.items()):
            lane.drop_partitions(revoked)
            if lane.held == 0:
                self._close_lane(key)

    def _close_lane(self, key: str) -> None:
        self.lanes.pop(key, None)
        self._wakeups.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            tasks = list(self._tasks.values())
            for key in list(self.lanes):
                self._close_lane(key)
            await asyncio.gather(*tasks, return_exceptions=True)
