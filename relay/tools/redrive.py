"""`relay dlq redrive`: send dead letters back for another try.

Each dead letter goes back to the topic named by its `relay.origin.topic` header (or `--to`),
with its original key and value, without the `relay.error.*` / `relay.origin.*` headers and
with `relay.redrive.count` raised by one. Filters match headers by their short name
(`class=invalid_json`, `stage=deliver`, `api_code=...`).

It reads the DLQ only up to the end it saw at start (see `dlq_read`), so a record that fails
again while the redrive runs is not read again in the same pass: one redrive sends each record
at most once. A record already redriven `RELAY_DLQ_MAX_REDRIVES` times is left alone unless
`--force`. The redrive group commits what it read; `--group` starts a fresh pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiokafka import ConsumerRecord

from relay.config import Settings
from relay.errors import ConfigError
from relay.kafka import BatchProducer, Header, OutRecord, make_producer
from relay.kafka_security import explain_failure
from relay.pipeline.dlq import REDRIVE_COUNT_HEADER, redrive_count
from relay.tools.dlq_read import read_to_snapshot, snapshot_consumer
from relay.tools.progress import ProgressLine

DROPPED_PREFIXES: Final = (
    "relay.error.",
    "relay.origin.",
    "relay.redacted",
    REDRIVE_COUNT_HEADER,
)


@dataclass
class RedriveSummary:
    read: int = 0
    redriven: int = 0  # sent back (or, in a dry run, would be)
    skipped: int = 0  # not matching the filters, or without an origin topic
    left_alone: int = 0  # redriven max_redrives times already
    targets: Counter[str] = field(default_factory=Counter)


def parse_filters(items: Sequence[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--filter {item!r} is not name=value (e.g. class=invalid_json)")
        filters[name.strip()] = value.strip()
    return filters


def short_headers(record: ConsumerRecord) -> dict[str, str]:
    """`relay.error.class` -> `class`, `relay.origin.topic` -> `origin_topic`,
    `relay.redrive.count` -> `redrive_count`."""
    result: dict[str, str] = {}
    for name, value in record.headers or ():
        text = value.decode("utf-8", "replace")
        if name.startswith("relay.error."):
            result[name.removeprefix("relay.error.")] = text
        elif name.startswith("relay.origin."):
            result["origin_" + name.removeprefix("relay.origin.")] = text
        elif name == REDRIVE_COUNT_HEADER:
            result["redrive_count"] = text
    return result


def matches(headers: Mapping[str, str], filters: Mapping[str, str]) -> bool:
    return all(headers.get(k) == v for k, v in filters.items())


def redriven_record(record: ConsumerRecord, target: str) -> OutRecord:
    kept: list[Header] = [
        (k, v) for k, v in record.headers or () if not k.startswith(DROPPED_PREFIXES)
    ]
    kept.append((REDRIVE_COUNT_HEADER, str(redrive_count(record.headers) + 1).encode()))
    return OutRecord(target, record.value or b"", key=record.key, headers=kept)


async def redrive(
    settings: Settings,
    *,
    to: str | None = None,
    filters: Mapping[str, str] | None = None,
    group: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    progress: ProgressLine | None = None,
) -> RedriveSummary:
    """One pass over the DLQ up to its end at start, redriving what matches."""
    if to == settings.dlq_topic:
        raise ConfigError("--to names the dead-letter topic itself")
    summary = RedriveSummary()
    consumer = snapshot_consumer(settings, group or f"{settings.topic_prefix}-redrive")
    producer = None if dry_run else make_producer(settings)
    try:
        await consumer.start()
    except Exception as exc:
        await consumer.stop()
        raise await explain_failure(settings, exc, "read the dead letters") from exc
    try:
        if producer is not None:
            await producer.start()
        batcher = BatchProducer(producer) if producer is not None else None
        async for tp, records in read_to_snapshot(consumer, settings.dlq_topic):
            out: list[OutRecord] = []
            for record in records:
                summary.read += 1
                headers = short_headers(record)
                target = to or headers.get("origin_topic")
                if (
                    not target
                    or target == settings.dlq_topic
                    or not matches(headers, filters or {})
                ):
                    summary.skipped += 1
                elif redrive_count(record.headers) >= settings.dlq_max_redrives and not force:
                    summary.left_alone += 1
                else:
                    out.append(redriven_record(record, target))
                    summary.targets[target] += 1
            summary.redriven += len(out)
            if batcher is not None:
                await batcher.send_and_wait(out)
                await consumer.commit({tp: records[-1].offset + 1})
            if progress is not None:
                verb = "would redrive" if dry_run else "redriven"
                progress.show(f"redrive: read {summary.read:,}, {verb} {summary.redriven:,}")
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    if progress is not None:
        progress.done()
    return summary


def describe(summary: RedriveSummary, *, dry_run: bool, max_redrives: int) -> list[str]:
    """What the redrive did (or, dry, would do), one fact per line."""
    where = ", ".join(f"{t}: {n:,}" for t, n in sorted(summary.targets.items()))
    verb = "would send back" if dry_run else "sent back"
    lines = [
        f"read {summary.read:,} dead letters (up to the end seen at start)",
        f"{verb} {summary.redriven:,}" + (f" ({where})" if where else ""),
    ]
    if summary.left_alone:
        lines.append(
            f"{'would leave' if dry_run else 'left'} alone {summary.left_alone:,} already "
            f"redriven {max_redrives} times (--force sends them anyway)"
        )
    if summary.skipped:
        lines.append(f"skipped {summary.skipped:,} not matching the filters")
    if dry_run:
        lines.append("dry run: nothing sent, nothing committed")
    return lines
