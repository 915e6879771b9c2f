"""`relay run`: the stages of one process, their shared producer and API client, the HTTP
side, and graceful shutdown in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from relay.config import Settings
from relay.errors import ConfigError
from relay.kafka import BatchProducer, admin_client, session_timeout_for, start_producer
from relay.observability.accounts import lane_states
from relay.observability.health import start_health_server
from relay.observability.metrics import Metrics
from relay.pipeline.consuming import ConsumerStage
from relay.pipeline.deliver import DeliverStage
from relay.pipeline.ingest import IngestStage
from relay.topics import prepare_topics
from relay.xads.client import XAdsClient

log = logging.getLogger(__name__)

Stage = Literal["all", "ingest", "deliver"]


@dataclass
class Worker:
    """Runs the chosen stages until `stop` is set (or a stage fails), then shuts down."""

    settings: Settings
    stage: Stage = "all"
    metrics: Metrics = field(default_factory=Metrics)
    serve_http: bool = True
    http_host: str = "0.0.0.0"
    stages: list[ConsumerStage] = field(default_factory=list)

    def readiness(self) -> tuple[bool, str]:
        if not self.stages:
            return False, "starting"
        for stage in self.stages:
            if isinstance(stage, DeliverStage) and stage.credentials_rejected:
                return False, "X rejects the credentials (401)"
            if stage.consumer is None:
                return False, f"{stage.stage} consumer not running"
        return True, "consuming (partitions assigned or waiting for assignment)"

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        delivers = self.stage in ("all", "deliver")
        if delivers and not (settings.credentials.complete or settings.use_pixel_token):
            raise ConfigError(
                "delivery needs X credentials: set RELAY_CONSUMER_KEY, RELAY_CONSUMER_SECRET, "
                "RELAY_ACCESS_TOKEN and RELAY_ACCESS_TOKEN_SECRET (or RELAY_USE_PIXEL_TOKEN=true "
                "with pixel tokens in RELAY_CONFIG)"
            )
        settings, producer = await self._prepare(settings)
        self.settings = settings
        self.metrics.accounts.top_n = settings.metrics_top_accounts
        batch_producer = BatchProducer(producer)
        runner: web.AppRunner | None = None
        pixel_tokens = {p.id: p.pixel_token for p in settings.mapping.pixels.values()}
        async with XAdsClient(
            settings.api_base_url,
            settings.credentials,
            timeout_s=settings.request_timeout_s,
            max_connections=settings.max_in_flight_requests * 2,
            pixel_tokens=pixel_tokens,
        ) as client:
            if self.stage in ("all", "ingest"):
                self.stages.append(IngestStage(settings, batch_producer, self.metrics))
            if self.stage in ("all", "deliver"):
                deliver = DeliverStage(settings, batch_producer, client, self.metrics)
                self.stages.append(deliver)
                self.metrics.watch_accounts(lambda: lane_states(deliver.lanes))
            try:
                if self.serve_http:
                    runner = await start_health_server(
                        self.metrics, self.readiness, self.http_host, settings.http_port
                    )
                await self._run_stages(stop)
            finally:
                if runner is not None:
                    await runner.cleanup()
                await producer.stop()
        log.info(
            "relay stopped: ingested=%d delivered=%d dead_lettered=%d dropped=%d",
            self.metrics.total("relay_events_ingested"),
            self.metrics.total("relay_events_delivered"),
            self.metrics.total("relay_events_dead_lettered"),
            self.metrics.total("relay_events_dropped"),
        )

    async def _prepare(self, settings: Settings) -> tuple[Settings, AIOKafkaProducer]:
        """Topics, the session timeout and a started producer; the producer starts alongside
        (it needs no topic), and all the topic work shares one admin connection."""
        async with admin_client(settings.kafka_bootstrap) as admin:  # the broker answers
            producing = asyncio.create_task(
                start_producer(settings.kafka_bootstrap, settings.kafka_idempotence)
            )
            try:
                await prepare_topics(settings, ingest=self.stage in ("all", "ingest"), admin=admin)
                settings = await with_session_timeout(settings, admin)
            except BaseException:
                # Let it finish starting, then stop it: a producer cancelled mid-start leaks.
                with contextlib.suppress(Exception):
                    await (await producing).stop()
                raise
        return settings, await producing

    async def _run_stages(self, stop: asyncio.Event) -> None:
        # Both stages stop together; what ingest finished but delivery has not read yet waits
        # on the outbound topic (committed) for the next run.
        tasks = [asyncio.create_task(s.run(stop), name=s.stage) for s in self.stages]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # one stage failing stops the others
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def with_session_timeout(
    settings: Settings, admin: AIOKafkaAdminClient | None = None
) -> Settings:
    """`settings` with the group session timeout the broker calls for, when unset."""
    timeout_ms = await session_timeout_for(
        settings.kafka_bootstrap, settings.kafka_session_timeout_ms, admin
    )
    if timeout_ms == settings.kafka_session_timeout_ms:
        return settings
    return dataclasses.replace(settings, kafka_session_timeout_ms=timeout_ms)


def run_worker(settings: Settings, stage: Stage) -> int:
    """Blocking entry point of `relay run`: SIGTERM/SIGINT start a graceful shutdown."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Worker(settings, stage).run(stop)

    asyncio.run(main())
    return 0
