"""The relay over real TLS: socat in front of the embedded broker, certificates made here."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from relay.config import Settings
from relay.errors import BrokerError
from relay.kafka import ensure_topics, make_consumer
from relay.pipeline.worker import Worker
from relay.sandbox.server import SandboxServer
from relay.tools.produce import produce
from tests.conftest import make_settings
from tests.kafka_helpers import wait_for
from tests.tls_fixtures import TlsKafka, mtls_kafka, tls_kafka

__all__ = ["mtls_kafka", "tls_kafka"]  # the fixtures, imported for pytest

EVENTS = 200


def tls_settings(tls: TlsKafka, prefix: str, api: str, **env: str) -> Settings:
    values = {
        "RELAY_KAFKA_SECURITY_PROTOCOL": "SSL",
        "RELAY_KAFKA_SSL_CA_FILE": str(tls.pki.ca),
        **env,
    }
    return make_settings(values.pop("bootstrap", tls.bootstrap), prefix, api, **values)


async def test_the_web_path_runs_end_to_end_over_tls(
    tls_kafka: TlsKafka, topic_prefix: str, sandbox: SandboxServer
) -> None:
    settings = tls_settings(tls_kafka, topic_prefix, sandbox.url)
    assert settings.kafka_ssl_check_hostname  # on by default
    summary = await produce(settings, count=EVENTS, seed=3)
    assert summary.deliver == EVENTS
    worker = Worker(settings, serve_http=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(
            lambda: task.done() or worker.metrics.total("relay_events_delivered") >= EVENTS,
            60,
            "every event delivered over TLS",
        )
    finally:
        stop.set()
        await task
    assert worker.metrics.total("relay_events_delivered") == EVENTS
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.url}/_sandbox/journal") as answer,
    ):
        assert len((await answer.json())["conversions"]) == EVENTS


async def test_the_tls_listener_refuses_plaintext_clients(tls_kafka: TlsKafka) -> None:
    # The same port without TLS gets nowhere: the flow above really was encrypted.
    consumer = make_consumer(tls_kafka.bootstrap, request_timeout_ms=3000)
    with pytest.raises(Exception):  # noqa: B017 - aiokafka's own connection error
        await asyncio.wait_for(consumer.start(), 20)
    await consumer.stop()


async def test_a_wrong_ca_is_named(tls_kafka: TlsKafka, topic_prefix: str) -> None:
    settings = tls_settings(
        tls_kafka,
        topic_prefix,
        "https://ads-api.x.com",
        RELAY_KAFKA_SSL_CA_FILE=str(tls_kafka.pki.other_ca),
    )
    with pytest.raises(BrokerError) as caught:
        await ensure_topics(settings, [settings.outbound_topic])
    message = str(caught.value)
    assert "RELAY_KAFKA_SSL_CA_FILE" in message
    assert "not trusted" in message


async def test_a_wrong_host_name_is_named(tls_kafka: TlsKafka, topic_prefix: str) -> None:
    settings = tls_settings(
        tls_kafka, topic_prefix, "https://ads-api.x.com", bootstrap=tls_kafka.by_address
    )
    with pytest.raises(BrokerError) as caught:
        await ensure_topics(settings, [settings.outbound_topic])
    message = str(caught.value)
    assert "RELAY_KAFKA_BOOTSTRAP" in message
    assert "not valid for the name '127.0.0.1'" in message


async def test_a_client_certificate_is_presented_when_the_broker_asks(
    mtls_kafka: TlsKafka, topic_prefix: str
) -> None:
    pki = mtls_kafka.pki
    settings = tls_settings(
        mtls_kafka,
        topic_prefix,
        "https://ads-api.x.com",
        RELAY_KAFKA_SSL_CERT_FILE=str(pki.client_cert),
        RELAY_KAFKA_SSL_KEY_FILE=str(pki.client_key),
    )
    summary = await produce(settings, count=20, seed=4)  # creates the topic, then writes
    assert summary.produced == 20
    without = tls_settings(mtls_kafka, topic_prefix, "https://ads-api.x.com")
    with pytest.raises(BrokerError, match="RELAY_KAFKA_SSL_CERT_FILE"):
        await ensure_topics(without, [f"{topic_prefix}.other"])
