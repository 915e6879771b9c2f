"""The floors the relay is compared with, measured in the same run on the same broker/sandbox.

Web: the same records consumed with `getmany`, decoded with orjson, encoded again and produced
with `create_batch`/`send_batch` (one batch per partition, the same keys and partition count
as the relay's topics), pipelined: up to `IN_FLIGHT_CHUNKS` chunks await their
acknowledgements while the next `getmany` runs. Nothing else: the fastest way to move the
records through Kafka in Python. Its CPU is this process's (idle otherwise meanwhile).

Mobile: the same number of `POST /12/conversion_event` calls, OAuth-signed, from a bare
aiohttp loop with `MOBILE_IN_FLIGHT` requests in flight, against the same sandbox process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import resource
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson

from relay.config import default_mapping_path, load_mapping
from relay.errors import RelayError
from relay.kafka import ensure_topics, make_consumer, make_producer
from relay.tools.bench.context import Run
from relay.tools.bench.events import BENCH_HMAC_KEY, Event
from relay.tools.bench.kafka_io import fill
from relay.xads.oauth import authorization_header

IN_FLIGHT_CHUNKS: Final = 4
MAX_RECORDS: Final = 5_000
MOBILE_IN_FLIGHT: Final = 128


@dataclass(frozen=True)
class Floor:
    name: str
    records: int
    seconds: float
    cpu_s: float

    @property
    def per_s(self) -> float | None:
        return self.records / self.seconds if self.seconds else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.per_s, 1) if self.per_s else None,
            "cpu_s_per_1000": round(self.cpu_s / self.records * 1000, 5),
        }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def web_floor(run: Run, bootstrap: str, events: Sequence[Event]) -> Floor:
    source, sink = "bench-floor.in", "bench-floor.out"
    await fill(bootstrap, source, events)
    await ensure_topics(bootstrap, [sink])
    consumer = make_consumer(
        bootstrap,
        source,
        group_id="bench-floor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = make_producer(bootstrap)
    await asyncio.gather(consumer.start(), producer.start())
    in_flight: deque[asyncio.Future[Any]] = deque()
    moved = 0
    started: float | None = None
    cpu_start = 0.0
    try:
        while moved < len(events):
            run.check("in the web floor")
            batch = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            if started is None and batch:
                started, cpu_start = time.perf_counter(), _cpu_s()  # the group join is not work
            for tp, messages in batch.items():
                out = producer.create_batch()
                for m in messages:
                    value = orjson.dumps(orjson.loads(m.value))
                    if out.append(key=m.key, value=value, timestamp=None) is None:
                        in_flight.append(
                            await producer.send_batch(out, sink, partition=tp.partition)
                        )
                        out = producer.create_batch()
                        out.append(key=m.key, value=value, timestamp=None)
                in_flight.append(await producer.send_batch(out, sink, partition=tp.partition))
                moved += len(messages)
            while len(in_flight) > IN_FLIGHT_CHUNKS * max(len(batch), 1):
                await in_flight.popleft()
        await asyncio.gather(*in_flight)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        cpu = _cpu_s() - cpu_start
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
    return Floor("getmany + orjson + send_batch, pipelined", moved, elapsed, cpu)


def _hashed(device_id: str) -> str:
    key = base64.b64decode(BENCH_HMAC_KEY)
    return base64.b64encode(hmac.new(key, device_id.encode(), hashlib.sha256).digest()).decode()


def conversion_params(events: Sequence[Event]) -> list[dict[str, str]]:
    """X's conversion_event query parameters for canonical mobile events (what the relay
    sends, computed independently)."""
    params = []
    for event in events:
        doc = orjson.loads(event.value)
        params.append(
            {
                "app_id": doc["app_id"],
                "os_type": doc["os_type"].upper(),
                "hashed_device_id": _hashed(doc["device_id"]),
                "conversion_type": doc["conversion_type"],
                "conversion_time": doc["conversion_time"],
            }
        )
    return params


async def mobile_floor(run: Run, sandbox_url: str, events: Sequence[Event]) -> Floor:
    creds = load_mapping(default_mapping_path()).credentials
    if creds is None:
        raise RelayError("the packaged defaults have no credentials")
    url = f"{sandbox_url}/12/conversion_event"
    todo: Iterator[dict[str, str]] = iter(conversion_params(events))
    statuses: Counter[int] = Counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        for params in todo:
            signed = authorization_header(
                "POST",
                f"{url}?{urlencode(params)}",
                consumer_key=creds.consumer_key,
                consumer_secret=creds.consumer_secret.reveal(),
                token=creds.access_token,
                token_secret=creds.access_token_secret.reveal(),
            )
            async with session.post(url, params=params, headers={"Authorization": signed}) as r:
                await r.read()
                statuses[r.status] += 1

    connector = aiohttp.TCPConnector(limit=MOBILE_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        started, cpu_start = time.perf_counter(), _cpu_s()
        await asyncio.wait_for(
            asyncio.gather(*(worker(session) for _ in range(MOBILE_IN_FLIGHT))),
            max(run.remaining_s(), 1),
        )
        elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu_start
    if set(statuses) != {200}:
        raise RelayError(f"the mobile floor got answers other than 200: {dict(statuses)}")
    return Floor(f"bare aiohttp loop, {MOBILE_IN_FLIGHT} in flight", len(events), elapsed, cpu)
