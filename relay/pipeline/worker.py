"""`relay run`: the stages of one process, their shared producer and API client, the HTTP
side, and graceful shutdown in one place.

Start-up order: the broker, the topics and the producer; then both stages' consumers start
joining their groups (the longest wait: the broker holds each join), and everything else
(the imports of the stages, X's clients, the ledger, parking, the HTTP side) is done while
the broker holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import importlib
import logging
import signal
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from relay.allocator import map_large_blocks, trim_heap_every
from relay.config import Settings
from relay.errors import ConfigError
from relay.eventloop import loop_factory
from relay.kafka import (
    DEFAULT_SESSION_TIMEOUT_MS,
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SESSION_TIMEOUT_MS,
    FETCH_MAX_WAIT_MS,
    BatchProducer,
    admin_client,
    is_embedded_broker,
    start_producer,
)
from relay.kafka_security import broker_tls
from relay.observability.metrics import Metrics
from relay.observability.startup import StartupTimeline
from relay.pipeline.broker_watch import (
    EXIT_BROKER_LOST,
    BrokerLost,
    BrokerWatch,
    close_without_broker,
    kafka_probe,
)
from relay.pipeline.consuming import CLOSE_WITHOUT_BROKER_S, ConsumerStage
from relay.pipeline.membership import EarlyMember, start_early
from relay.topics import prepare_topics

if TYPE_CHECKING:
    from aiohttp import web

    from relay.pipeline.ledger import DeliveredLedger

log = logging.getLogger(__name__)

Stage = Literal["all", "ingest", "deliver"]

# Imported while the broker holds the group joins (aiohttp alone loads the CA bundle twice).
STAGE_MODULES: Final = (
    "aiohttp.web",
    "relay.xads.client",
    "relay.pipeline.ingest",
    "relay.pipeline.deliver",
    "relay.observability.health",
    "relay.observability.accounts",
)


def import_stage_modules() -> None:
    for name in STAGE_MODULES:
        importlib.import_module(name)


@dataclass
class Worker:
    """Runs the chosen stages until `stop` is set (or a stage fails), then shuts down."""

    settings: Settings
    stage: Stage = "all"
    metrics: Metrics = field(default_factory=Metrics)
    serve_http: bool = True
    http_host: str = "0.0.0.0"
    stages: list[ConsumerStage] = field(default_factory=list)
    broker_watch: BrokerWatch | None = None
    timeline: StartupTimeline = field(default_factory=StartupTimeline)

    def readiness(self) -> tuple[bool, str]:
        if not self.stages:
            return False, "starting"
        if self.broker_watch is not None and (gone := self.broker_watch.readiness()):
            return gone
        for stage in self.stages:
            reason = stage.blocked_reason()
            if reason is not None:
                return False, reason
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
        ingest = self.stage in ("all", "ingest")
        watch = self.broker_watch = BrokerWatch(
            settings.kafka_bootstrap,
            settings.broker_lost_exit_s,
            probe=kafka_probe(settings.kafka_bootstrap, tls=broker_tls(settings)),
            # Back: recreate the relay's own topics (a restarted embedded broker is empty);
            # input topics are the producers' to create.
            on_back=lambda: prepare_topics(settings, ingest=False),
        )
        if not await watch.wait_until_reachable(stop):
            return  # stopped while waiting
        self.timeline.mark("broker answers")
        # Records held while the broker is gone wait for it as long as the watch does,
        # rather than failing the stage after aiokafka's default 30 s.
        lost_ms = int(max(30.0, settings.broker_lost_exit_s + 10) * 1000)
        settings, producer = await self._prepare(settings, ingest, lost_ms)
        self.settings = settings
        self.metrics.accounts.top_n = settings.metrics_top_accounts
        members: dict[str, EarlyMember] = {}
        try:
            if ingest:
                members["ingest"] = start_early(settings, "ingest")
            if delivers:
                members["deliver"] = start_early(settings, "deliver")
            self.timeline.mark("joining")
            # The loop keeps serving the joins meanwhile.
            await asyncio.to_thread(import_stage_modules)
            self.timeline.mark("stage imports")
            await self._build_and_run(stop, watch, settings, producer, members)
        finally:
            for member in members.values():
                if not member.owned:  # its stage never ran: end its join here
                    await member.abandon(functools.partial(_close_member, watch=watch))
            if watch.connected:
                await producer.stop()
            else:  # flushing would wait for the broker
                await close_without_broker(producer.stop())
        log.info(
            "relay stopped: ingested=%d delivered=%d dead_lettered=%d dropped=%d",
            self.metrics.total("relay_events_ingested"),
            self.metrics.total("relay_events_delivered"),
            self.metrics.total("relay_events_dead_lettered"),
            self.metrics.total("relay_events_dropped"),
        )

    async def _build_and_run(
        self,
        stop: asyncio.Event,
        watch: BrokerWatch,
        settings: Settings,
        producer: AIOKafkaProducer,
        members: dict[str, EarlyMember],
    ) -> None:
        from relay.observability.accounts import lane_states
        from relay.observability.health import start_health_server
        from relay.pipeline.deliver import DEFAULT_CREDENTIAL, DeliverStage
        from relay.pipeline.ingest import IngestStage
        from relay.pipeline.ledger import DeliveredLedger
        from relay.pipeline.parking import Parking
        from relay.xads.client import XAdsClient
        from relay.xads.egress import Egress

        batch_producer = BatchProducer(producer)
        runner: web.AppRunner | None = None
        pixel_tokens = {p.id: p.pixel_token for p in settings.mapping.pixels.values()}
        # The pool is never smaller than the requests the deliver stage keeps in flight.
        egress = Egress.from_settings(settings)
        egress = dataclasses.replace(
            egress, max_connections=max(egress.max_connections, settings.max_in_flight_requests)
        )
        credentials = {DEFAULT_CREDENTIAL: settings.credentials} | {
            named.name: named.credentials for named in settings.mapping.named_credentials
        }
        async with contextlib.AsyncExitStack() as clients_stack:
            # One pooled session per set of credentials.
            clients = {
                name: await clients_stack.enter_async_context(
                    XAdsClient(
                        settings.api_base_url, creds, pixel_tokens=pixel_tokens, egress=egress
                    )
                )
                for name, creds in credentials.items()
            }
            if "ingest" in members:
                self.stages.append(IngestStage(settings, batch_producer, self.metrics))
            if "deliver" in members:
                # Closed (the ledger written out) when the clients' stack unwinds, after the
                # stages stopped and before the producer stops.
                ledger = DeliveredLedger(settings, batch_producer, self.metrics)
                await ledger.start()
                clients_stack.push_async_callback(close_ledger, ledger, watch)
                parking = await clients_stack.enter_async_context(
                    Parking(settings, batch_producer, self.metrics)
                )
                deliver = DeliverStage(
                    settings,
                    batch_producer,
                    clients,
                    self.metrics,
                    ledger=ledger,
                    parking=parking,
                )
                self.stages.append(deliver)
                self.metrics.watch_accounts(lambda: lane_states(deliver.lanes))
            for stage in self.stages:
                stage.broker_ok = lambda: watch.connected
                stage.timeline = self.timeline
                stage.adopt(members[stage.stage])
            try:
                if self.serve_http:
                    try:
                        runner = await start_health_server(
                            self.metrics, self.readiness, self.http_host, settings.http_port
                        )
                    except OSError as exc:
                        raise ConfigError(
                            f"RELAY_HTTP_PORT: cannot listen on {self.http_host}:"
                            f"{settings.http_port}: {exc.strerror or exc}"
                        ) from exc
                self.timeline.mark("stages built")
                await self._run_stages(stop, watch)
            finally:
                if runner is not None:
                    await runner.cleanup()

    async def _prepare(
        self, settings: Settings, ingest: bool, request_timeout_ms: int
    ) -> tuple[Settings, AIOKafkaProducer]:
        """Topics, the session timeout and a started producer; the producer starts alongside
        (it needs no topic), and all the topic work shares one admin connection."""
        async with admin_client(settings) as admin:  # the broker answers
            producing = asyncio.create_task(
                start_producer(
                    settings, settings.kafka_idempotence, request_timeout_ms=request_timeout_ms
                )
            )
            try:
                await prepare_topics(settings, ingest=ingest, admin=admin)
                self.timeline.mark("topics")
                settings = await with_broker_defaults(settings, admin)
                self.timeline.mark("broker defaults")
            except BaseException:
                # Let it finish starting, then stop it: a producer cancelled mid-start leaks.
                with contextlib.suppress(Exception):
                    await (await producing).stop()
                raise
        producer = await producing
        self.timeline.mark("producer")
        return settings, producer

    async def _run_stages(self, stop: asyncio.Event, watch: BrokerWatch) -> None:
        # Both stages stop together; what ingest finished but delivery has not read yet waits
        # on the outbound topic (committed) for the next run.
        tasks = [asyncio.create_task(s.run(stop), name=s.stage) for s in self.stages]
        tasks.append(asyncio.create_task(watch.run(stop), name="broker-watch"))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # one stage failing stops the others
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        for result in results:
            if isinstance(result, BrokerLost):
                raise result
        for result in results:
            if isinstance(result, BaseException):
                gone = watch.readiness()
                if gone is not None:  # a stage failing for want of a broker
                    raise BrokerLost(f"{gone[1]}: {result!r}") from result
                raise result


async def _close_member(stopping: Awaitable[None], *, watch: BrokerWatch) -> None:
    if watch.connected:
        await stopping
    else:
        await close_without_broker(stopping, CLOSE_WITHOUT_BROKER_S)


async def close_ledger(ledger: DeliveredLedger, watch: BrokerWatch) -> None:
    """Write the ledger out; without a broker that cannot be: its last keys are lost (the
    replays they would have stopped are the bounded duplicates), not the exit code."""
    try:
        await ledger.close()
    except Exception as exc:
        if watch.connected:
            raise
        log.warning("delivered ledger not written out (Kafka unreachable): %s", exc)


async def with_broker_defaults(
    settings: Settings, admin: AIOKafkaAdminClient | None = None
) -> Settings:
    """`settings` with the group session timeout and fetch wait the broker calls for, where
    unset."""
    session_ms, fetch_ms = settings.kafka_session_timeout_ms, settings.kafka_fetch_max_wait_ms
    if session_ms is not None and fetch_ms is not None:
        return settings
    embedded = await is_embedded_broker(settings, admin)
    if session_ms is None:
        session_ms = EMBEDDED_SESSION_TIMEOUT_MS if embedded else DEFAULT_SESSION_TIMEOUT_MS
    if fetch_ms is None:
        fetch_ms = EMBEDDED_FETCH_MAX_WAIT_MS if embedded else FETCH_MAX_WAIT_MS
    return dataclasses.replace(
        settings, kafka_session_timeout_ms=session_ms, kafka_fetch_max_wait_ms=fetch_ms
    )


# Collector thresholds of a process that allocates a few dozen short-lived objects per event
# and frees nearly all of them by reference counting: Python's default (a young collection
# every 700 allocations, walking everything young) cost ~15% of the CPU per event
# (bench/profile.md). Cycles are still collected, every 50,000 allocations.
GC_THRESHOLDS: Final = (50_000, 50, 100)
# The heap's free pages go back to the system this often (relay.allocator.trim_heap).
HEAP_TRIM_S: Final = 1.0


def tune_garbage_collector() -> None:
    """What exists at start (modules, settings) is never garbage: leave it out of every
    collection, and collect young objects less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings, stage: Stage, timeline: StartupTimeline | None = None) -> int:
    """Blocking entry point of `relay run`: SIGTERM/SIGINT start a graceful shutdown."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        log.info("event loop: %s", type(loop).__module__.partition(".")[0])
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        trimming = asyncio.create_task(trim_heap_every(HEAP_TRIM_S), name="heap-trim")
        try:
            await Worker(settings, stage, timeline=timeline or StartupTimeline()).run(stop)
        finally:
            trimming.cancel()

    factory = loop_factory(settings.event_loop)  # imported before the freeze: kept out too
    tune_garbage_collector()
    map_large_blocks()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except BrokerLost as exc:
        log.error("%s", exc)
        return EXIT_BROKER_LOST
    return 0
