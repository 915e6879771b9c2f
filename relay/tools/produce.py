"""`relay produce`: synthetic input events, valid and deliberately broken ones.

Each generated record says what it should become (delivered, dead-lettered, dropped), so the
demo and tests can check that every event is accounted for.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from relay.config import MappingFile, Pixel, Settings
from relay.errors import ConfigError
from relay.kafka import BatchProducer, OutRecord, ensure_topics, make_producer
from relay.tools.generators.base import Expect, Synthetic, World
from relay.tools.generators.registry import GENERATORS

AREA_CODES: Final = ("212", "303", "312", "415", "512", "617", "646", "702", "808", "917")
# Non-NANP numbers as feeds write them (eight digits after the prefix, each a possible
# number): they take the relay's full phone parser, unlike "+1" and ten digits.
INTERNATIONAL_PHONES: Final = (
    "+44 20 {}",
    "+49 30 {}",
    "+33 1 {}",
    "+91 98{}",
    "+81 3-{}",
    "+55 11 9{}",
    "+61 2 {}",
    "+52 55 {}",
)
BATCH: Final = 2000


@dataclass
class ProduceSummary:
    produced: int = 0
    deliver: int = 0
    dead_letter: int = 0
    drop: int = 0

    def add(self, expect: Expect) -> None:
        self.produced += 1
        setattr(self, expect, getattr(self, expect) + 1)


def usable_pixels(mapping: MappingFile, accounts: int | None = None) -> list[Pixel]:
    """Pixels whose account the configured token may use (others would be 403s)."""
    allowed = set(mapping.token_accounts)
    pixels = [
        p
        for p in mapping.pixels.values()
        if p.event_ids and (not allowed or p.account_id in allowed)
    ]
    if not pixels:
        raise ConfigError("the mapping file lists no pixel with event ids for the token")
    return pixels[:accounts] if accounts else pixels


def _phone(rng: random.Random) -> str:
    exchange, line, area = rng.randint(200, 999), rng.randint(0, 9999), rng.choice(AREA_CODES)
    # A quarter are non-NANP, made of the same draws: the random stream (and so every other
    # field of a seeded feed) stays what it was before they existed.
    if line % 4 == 0:
        template = INTERNATIONAL_PHONES[(line // 4) % len(INTERNATIONAL_PHONES)]
        return template.format(f"{area}{exchange:03d}{line // 32 % 100:02d}")
    return f"+1 ({area}) {exchange}-{line:04d}"


def _web_event(rng: random.Random, pixel: Pixel, now: datetime) -> dict[str, object]:
    when = now - timedelta(seconds=rng.randint(0, 86_400))
    user = rng.randint(1, 10_000_000)
    return {
        "account_id": pixel.account_id,
        "pixel_id": pixel.id,
        "event_id": rng.choice(pixel.event_ids),
        "conversion_time": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "conversion_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "email": f"  Customer.{user}@Example.com ",
        "phone": _phone(rng),
        "ip_address": f"192.0.2.{rng.randint(1, 254)}",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "value": f"{rng.randint(100, 50_000) / 100:.2f}",
        "price_currency": rng.choice(("usd", "eur", "gbp")),
        "number_items": rng.randint(1, 5),
        "consent": {"opt_out": False},
    }


def _broken(rng: random.Random, event: dict[str, object]) -> bytes:
    """One of the ways real feeds break."""
    kind = rng.randrange(8)
    if kind == 0:
        return b"{not json"
    if kind == 1:
        return b'{"pixel_id": "\xff\xfe"}'
    if kind == 2:
        return orjson.dumps([event])
    if kind == 3:
        return orjson.dumps({**event, "conversion_time": "yesterday"})
    if kind == 4:
        return orjson.dumps({**event, "email": None, "phone": None, "hashed_email": "abc"})
    if kind == 5:
        return orjson.dumps({**event, "event_id": "zzzzz"})
    if kind == 6:
        return orjson.dumps({**event, "email": None, "phone": None, "user_agent": None})  # ip alone
    return orjson.dumps({**event, "number_items": {"nested": [1, [2, {"x": None}]]}})


def generate_web(
    count: int,
    pixels: list[Pixel],
    *,
    invalid_ratio: float = 0.0,
    opt_out_ratio: float = 0.0,
    seed: int = 1,
) -> Iterator[Synthetic]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for _ in range(count):
        event = _web_event(rng, rng.choice(pixels), now)
        roll = rng.random()
        if roll < invalid_ratio:
            yield Synthetic(_broken(rng, event), "dead_letter")
        elif roll < invalid_ratio + opt_out_ratio:
            event["consent"] = {"opt_out": True}
            yield Synthetic(orjson.dumps(event), "drop")
        else:
            yield Synthetic(orjson.dumps(event), "deliver")


def generate(
    fmt: str,
    count: int,
    mapping: MappingFile,
    *,
    accounts: int | None = None,
    invalid_ratio: float = 0.0,
    opt_out_ratio: float = 0.0,
    seed: int = 1,
) -> Iterator[Synthetic]:
    """`count` synthetic records of any input format."""
    if fmt == "web":
        pixels = usable_pixels(mapping, accounts)
        return generate_web(
            count, pixels, invalid_ratio=invalid_ratio, opt_out_ratio=opt_out_ratio, seed=seed
        )
    return GENERATORS[fmt].generate(
        count,
        World.of(mapping, accounts),
        datetime.now(UTC),
        invalid_ratio=invalid_ratio,
        opt_out_ratio=opt_out_ratio,
        seed=seed,
    )


async def produce(
    settings: Settings,
    *,
    fmt: str = "web",
    count: int,
    topic: str | None = None,
    rate: float | None = None,
    accounts: int | None = None,
    invalid_ratio: float = 0.0,
    opt_out_ratio: float = 0.0,
    seed: int = 1,
    progress: Callable[[ProduceSummary], None] | None = None,
) -> ProduceSummary:
    """Write `count` synthetic events of `fmt` to `topic` (the first input of that format)."""
    if fmt != "web" and fmt not in GENERATORS:
        known = ", ".join(["web", *GENERATORS])
        raise ConfigError(f"the generator does not know format {fmt!r} (available: {known})")
    if not 0 <= invalid_ratio + opt_out_ratio <= 1:
        raise ConfigError("--invalid-ratio plus --opt-out-ratio must be within 0..1")
    target = topic or next((t for t, f in settings.inputs.items() if f == fmt), None)
    if target is None:
        raise ConfigError(f"no input topic of format {fmt!r} in RELAY_INPUTS; pass --topic")
    await ensure_topics(settings, [target])
    events = generate(
        fmt,
        count,
        settings.mapping,
        accounts=accounts,
        invalid_ratio=invalid_ratio,
        opt_out_ratio=opt_out_ratio,
        seed=seed,
    )
    summary = ProduceSummary()
    producer = make_producer(settings)
    await producer.start()
    started = time.monotonic()
    try:
        batcher = BatchProducer(producer)
        chunk: list[OutRecord] = []
        for synthetic in events:
            chunk.append(OutRecord(target, synthetic.value))
            summary.add(synthetic.expect)
            if len(chunk) >= BATCH:
                await batcher.send_and_wait(chunk)
                chunk = []
                if progress:
                    progress(summary)
                if rate:
                    ahead = summary.produced / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await batcher.send_and_wait(chunk)
    finally:
        await producer.stop()
    if progress:
        progress(summary)
    return summary
