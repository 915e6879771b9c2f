"""Reading the dead-letter topic up to the end it had when the reading began.

`relay dlq redrive` and `relay dlq show` must terminate even while a worker keeps adding
dead letters (a redriven record that fails again comes back to the DLQ): they read each
partition up to an end offset fixed before anything is sent, never to "idle".

The end of a partition is the larger of `end_offsets()` (ListOffsets) and the fetch
high-water mark seen by the first poll; the embedded broker's ListOffsets can lag behind the
high-water mark. Both are taken before the caller sends anything, so neither can include the
caller's own output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import Settings
from relay.kafka import make_consumer

log = logging.getLogger(__name__)

POLL_MS: Final = 500
MAX_RECORDS: Final = 2000
STALL_S: Final = 15.0  # no progress towards the end for this long: stop, say so


def snapshot_consumer(settings: Settings, group: str | None) -> AIOKafkaConsumer:
    """A consumer that joins no group (partitions are assigned by hand); with `group` it
    starts from and commits to that group's offsets."""
    return make_consumer(
        settings,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def read_to_snapshot(
    consumer: AIOKafkaConsumer, topic: str, *, stall_s: float = STALL_S
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord]]]:
    """Yield (partition, records) from each partition's start position up to its end at the
    time of the call; a started consumer, nothing assigned yet."""
    if topic not in await consumer.topics():
        return
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(tps)
    ends: dict[TopicPartition, int] = dict(await consumer.end_offsets(tps))
    positions = {tp: await consumer.position(tp) for tp in tps}
    first = await consumer.getmany(*tps, timeout_ms=POLL_MS, max_records=MAX_RECORDS)
    for tp in tps:
        ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
    pending = {tp for tp in tps if positions[tp] < ends[tp]}
    consumer.pause(*(set(tps) - pending))
    batch = first
    last_progress = time.monotonic()
    while pending:
        for tp, records in batch.items():
            inside = [r for r in records if r.offset < ends[tp]]
            if inside:
                yield tp, inside
        for tp in list(pending):
            position = await consumer.position(tp)
            if position > positions[tp]:
                positions[tp] = position
                last_progress = time.monotonic()
            if position >= ends[tp]:
                pending.discard(tp)
                consumer.pause(tp)
        if not pending:
            return
        if time.monotonic() - last_progress > stall_s:
            log.warning(
                "%s: no progress for %.0fs; stopping before the end of %d partitions",
                topic,
                stall_s,
                len(pending),
            )
            return
        batch = await consumer.getmany(*pending, timeout_ms=POLL_MS, max_records=MAX_RECORDS)
