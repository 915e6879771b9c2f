"""Shared by the tests of components that write to the real broker (ledger, parking):
settings whose outbound topic exists, a clock the test moves. (Their `producer` fixture is
in conftest.py.)"""

from __future__ import annotations

from typing import Any

from relay.config import Settings
from relay.kafka import ensure_topics
from tests.conftest import make_settings

PARTITIONS = 3  # of the outbound topic


class FakeClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def outbound_settings(kafka_bootstrap: str, topic_prefix: str, **env: Any) -> Settings:
    """Settings of this test's topics (X unreachable), the outbound topic created with
    PARTITIONS partitions."""
    settings = make_settings(kafka_bootstrap, topic_prefix, "http://127.0.0.1:1", **env)
    await ensure_topics(kafka_bootstrap, [settings.outbound_topic], partitions=PARTITIONS)
    return settings
