import asyncio

import pytest

from relay.config import load_settings
from relay.errors import ConfigError
from relay.pipeline.worker import Worker


async def test_delivery_refuses_to_start_without_credentials() -> None:
    worker = Worker(load_settings({}), serve_http=False)
    with pytest.raises(ConfigError, match="RELAY_CONSUMER_KEY"):
        await worker.run(asyncio.Event())


async def test_ingest_alone_needs_no_credentials_to_get_past_the_check() -> None:
    # Ingest never calls X; it fails later only because no broker listens on this port
    # (after waiting RELAY_BROKER_LOST_EXIT_S for one).
    settings = load_settings(
        {"RELAY_KAFKA_BOOTSTRAP": "127.0.0.1:1", "RELAY_BROKER_LOST_EXIT_S": "1"}
    )
    with pytest.raises(Exception) as caught:
        await Worker(settings, stage="ingest", serve_http=False).run(asyncio.Event())
    assert not isinstance(caught.value, ConfigError)
