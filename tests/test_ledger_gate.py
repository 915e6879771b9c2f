"""Delivery never runs ahead of the delivered ledger by more than RELAY_LEDGER_MAX_UNACKED_KEYS:
what a kill -9 would send to X twice (events in requests, delivered keys not yet written) is
bounded by the cap, even while the broker does not acknowledge the ledger's writes."""

from __future__ import annotations

import asyncio

from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_producer
from relay.observability.metrics import Metrics
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from tests.conftest import make_settings
from tests.kafka_helpers import committed_and_end, wait_for
from tests.kafka_proxy import PRODUCE, broker_behind_proxy
from tests.test_fairness import web_record

CAP = 600
EVENTS = 3000


def ledger_behind(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("relay_delivery_blocked", {"reason": "ledger_behind"})


async def test_delivery_waits_while_the_ledger_is_not_acknowledged_then_goes_on(
    sandbox: SandboxServer,
) -> None:
    async with broker_behind_proxy() as proxy:
        settings = make_settings(
            proxy.bootstrap, "gate", sandbox.url, RELAY_LEDGER_MAX_UNACKED_KEYS=str(CAP)
        )
        pixels = [("18ce552mlaq", "o8z6j", "o87ne"), ("18ce55ab3cd", "p1a2b", "p9x01")]
        values = [web_record(a, p, e, i) for i in range(EVENTS // 2) for a, p, e in pixels]
        await ensure_topics(proxy.bootstrap, [settings.outbound_topic])
        producer = make_producer(proxy.bootstrap)
        await producer.start()
        try:
            await BatchProducer(producer).send_and_wait(
                OutRecord(settings.outbound_topic, v) for v in values
            )
        finally:
            await producer.stop()
        # The deliver stage's first write is the ledger's: the broker never answers it (the
        # producer gives up on it after its answer timeout, then the ledger writes it again).
        proxy.swallow(PRODUCE)
        worker = Worker(settings, serve_http=False, stage="deliver")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            metrics = worker.metrics
            await wait_for(
                lambda: proxy.swallowed == {PRODUCE: 1} and ledger_behind(metrics) == 1,
                30,
                "the ledger's write to hang and delivery to wait for it",
            )
            delivered = metrics.total("relay_events_delivered")
            assert 0 < delivered <= CAP
            await wait_for(
                lambda: metrics.total("relay_events_delivered") == EVENTS,
                60,
                "every event once the ledger's write went through",
            )
            assert ledger_behind(metrics) == 0
            assert proxy.swallowed == {PRODUCE: 1}
        finally:
            stop.set()
            await task
        offsets = await committed_and_end(
            proxy.bootstrap, settings.deliver_group, settings.outbound_topic
        )
        assert all((c or 0) == end for c, end in offsets.values()), offsets
