"""The relay's own topics, created at start when absent; input topics are only checked.

    <prefix>.outbound      events ready for X, keyed by budget key
    <prefix>.dlq           dead letters (longer retention: time to fix and redrive)
    <prefix>.attributions  X's attribution of app conversions
    <prefix>.delivered     compacted ledger of delivered keys
    <prefix>.delayed       parked overflow of held or over-budget accounts

A missing input topic is an error with the reason, never created: a typo in RELAY_INPUTS
would otherwise give a ready worker reading an empty new topic. `.delivered` and `.delayed`
get as many partitions as `.outbound` really has (partition p of each holds the same keys;
the ledger and parking refuse a mismatch).
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from relay.config import Settings
from relay.errors import ConfigError
from relay.kafka import (
    TopicSpec,
    admin_client,
    ensure_topics,
    existing_topics,
    partition_count,
)


def own_topics(settings: Settings, outbound_partitions: int | None = None) -> list[TopicSpec]:
    """The relay's topics as it creates them (`outbound_partitions`: of an existing outbound)."""
    like_outbound = outbound_partitions or settings.topic_partitions

    def spec(
        name: str, retention_ms: float, cleanup: str = "delete", like: bool = False
    ) -> TopicSpec:
        configs = {"cleanup.policy": cleanup, "retention.ms": str(int(retention_ms))}
        partitions = like_outbound if like else settings.topic_partitions
        return TopicSpec(name, partitions, settings.topic_replication_factor, configs)

    retention = settings.topic_retention_ms
    return [
        spec(settings.outbound_topic, retention),
        spec(settings.dlq_topic, settings.dlq_retention_ms),
        spec(settings.attributions_topic, retention),
        # The ledger remembers delivered keys for its window: compacted, and dropped after two.
        spec(
            settings.delivered_topic,
            2 * settings.ledger_window_s * 1000,
            cleanup="compact,delete",
            like=True,
        ),
        spec(settings.delayed_topic, retention, like=True),
    ]


async def check_inputs(settings: Settings, admin: AIOKafkaAdminClient | None = None) -> None:
    """ConfigError naming every input topic that does not exist."""
    existing = await existing_topics(settings, admin)
    missing = sorted(t for t in settings.inputs if t not in existing)
    if missing:
        raise ConfigError(
            f"input topic(s) {', '.join(missing)} (RELAY_INPUTS) do not exist on "
            f"{settings.kafka_bootstrap}; the relay never creates input topics: create them "
            "or correct RELAY_INPUTS"
        )


async def prepare_topics(
    settings: Settings, *, ingest: bool, admin: AIOKafkaAdminClient | None = None
) -> None:
    """Check the inputs (when this process ingests) and create the relay's own topics."""
    async with admin_client(settings, admin) as client:  # one connection for all of it
        if ingest:
            await check_inputs(settings, client)
        outbound = own_topics(settings)[0]
        await ensure_topics(settings, [outbound], admin=client)
        partitions = await partition_count(settings, settings.outbound_topic, client)
        await ensure_topics(settings, own_topics(settings, partitions)[1:], admin=client)
