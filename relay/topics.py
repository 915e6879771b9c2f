"""The relay's own topics, created at start when absent; input topics are only checked.

    <prefix>.outbound      events ready for X, keyed by budget key
    <prefix>.dlq           dead letters (longer retention: time to fix and redrive)
    <prefix>.attributions  X's attribution of app conversions
    <prefix>.delivered     compacted ledger of delivered keys
    <prefix>.delayed       parked overflow of held or over-budget accounts

A missing input topic is an error with the reason, never created: a typo in RELAY_INPUTS
would otherwise give a ready worker reading an empty new topic.
"""

from __future__ import annotations

from relay.config import Settings
from relay.errors import ConfigError
from relay.kafka import TopicSpec, ensure_topics, existing_topics


def own_topics(settings: Settings) -> list[TopicSpec]:
    def spec(name: str, retention_ms: int, cleanup: str = "delete") -> TopicSpec:
        configs = {"cleanup.policy": cleanup}
        if cleanup == "delete":
            configs["retention.ms"] = str(retention_ms)
        return TopicSpec(
            name, settings.topic_partitions, settings.topic_replication_factor, configs
        )

    retention = settings.topic_retention_ms
    return [
        spec(settings.outbound_topic, retention),
        spec(settings.dlq_topic, settings.dlq_retention_ms),
        spec(settings.attributions_topic, retention),
        spec(settings.delivered_topic, retention, cleanup="compact"),
        spec(settings.delayed_topic, retention),
    ]


async def check_inputs(settings: Settings) -> None:
    """ConfigError naming every input topic that does not exist."""
    existing = await existing_topics(settings.kafka_bootstrap)
    missing = sorted(t for t in settings.inputs if t not in existing)
    if missing:
        raise ConfigError(
            f"input topic(s) {', '.join(missing)} (RELAY_INPUTS) do not exist on "
            f"{settings.kafka_bootstrap}; the relay never creates input topics: create them "
            "or correct RELAY_INPUTS"
        )


async def prepare_topics(settings: Settings, *, ingest: bool) -> None:
    """Check the inputs (when this process ingests) and create the relay's own topics."""
    if ingest:
        await check_inputs(settings)
    await ensure_topics(settings.kafka_bootstrap, own_topics(settings))
