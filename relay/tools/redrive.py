"""`relay dlq redrive`: send dead letters back for another try.

Each dead letter goes back to the topic named by its `relay.origin.topic` header (or `--to`),
with its original key and value and without the `relay.*` headers. Filters match headers by
their short name (`class=invalid_json`, `stage=deliver`, `api_code=...`). The redrive group
commits what it read, so a dead letter is redriven once; `--group` starts a fresh pass.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import Settings
from relay.errors import ConfigError
from relay.kafka import (
    BatchProducer,
    OutRecord,
    group_options,
    make_producer,
    session_timeout_for,
)

HEADER_PREFIXES: Final = ("relay.error.", "relay.origin.")
POLL_MS: Final = 500


@dataclass
class RedriveSummary:
    read: int = 0
    redriven: int = 0
    skipped: int = 0


def parse_filters(items: Sequence[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--filter {item!r} is not name=value (e.g. class=invalid_json)")
        filters[name.strip()] = value.strip()
    return filters


def short_headers(record: ConsumerRecord) -> dict[str, str]:
    """`relay.error.class` -> `class`, `relay.origin.topic` -> `origin_topic`."""
    result: dict[str, str] = {}
    for name, value in record.headers or ():
        text = value.decode("utf-8", "replace")
        if name.startswith("relay.error."):
            result[name.removeprefix("relay.error.")] = text
        elif name.startswith("relay.origin."):
            result["origin_" + name.removeprefix("relay.origin.")] = text
    return result


def matches(headers: Mapping[str, str], filters: Mapping[str, str]) -> bool:
    return all(headers.get(k) == v for k, v in filters.items())


async def redrive(
    settings: Settings,
    *,
    to: str | None = None,
    filters: Mapping[str, str] | None = None,
    group: str | None = None,
    dry_run: bool = False,
) -> RedriveSummary:
    """Read the DLQ up to its current end once, redriving what matches."""
    summary = RedriveSummary()
    session_ms = await session_timeout_for(
        settings.kafka_bootstrap, settings.kafka_session_timeout_ms
    )
    consumer = AIOKafkaConsumer(
        settings.dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group or f"{settings.topic_prefix}-redrive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **group_options(session_ms),
    )
    producer = make_producer(settings.kafka_bootstrap)
    await consumer.start()
    await producer.start()
    try:
        batcher = BatchProducer(producer)
        idle = 0
        while idle < 2:  # two empty polls after the last record: caught up with the DLQ
            batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=2000)
            if not batch:
                idle += 1
                continue
            idle = 0
            out: list[OutRecord] = []
            positions: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    summary.read += 1
                    positions[tp] = record.offset + 1
                    headers = short_headers(record)
                    target = to or headers.get("origin_topic")
                    if not target or not matches(headers, filters or {}):
                        summary.skipped += 1
                        continue
                    kept = [
                        (k, v) for k, v in record.headers or () if not k.startswith(HEADER_PREFIXES)
                    ]
                    out.append(OutRecord(target, record.value or b"", key=record.key, headers=kept))
            if not dry_run:
                await batcher.send_and_wait(out)
                await consumer.commit(positions)
            summary.redriven += len(out)
            print(
                f"\rredrive: read {summary.read:,}, redriven {summary.redriven:,}",
                end="",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await consumer.stop()
        await producer.stop()
    print(file=sys.stderr)
    return summary
