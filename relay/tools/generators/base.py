"""What every generator shares: the synthetic record, the demo world, random ids."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from relay.config import App, MappingFile, Pixel
from relay.errors import ConfigError

Expect = Literal["deliver", "dead_letter", "drop"]
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Synthetic:
    value: bytes
    expect: Expect


@dataclass(frozen=True, slots=True)
class World:
    """The apps and pixels of the mapping file that the configured token may use."""

    mapping: MappingFile
    apps: tuple[App, ...]
    pixels: tuple[Pixel, ...]

    @classmethod
    def of(cls, mapping: MappingFile, accounts: int | None = None) -> World:
        allowed = set(mapping.token_accounts)

        def usable(account_id: str) -> bool:
            return not allowed or account_id in allowed

        apps = [a for a in mapping.apps.values() if usable(a.account_id)]
        pixels = [p for p in mapping.pixels.values() if p.event_ids and usable(p.account_id)]
        if accounts:
            keep = sorted({a.account_id for a in apps} | {p.account_id for p in pixels})[:accounts]
            apps = [a for a in apps if a.account_id in keep]
            pixels = [p for p in pixels if p.account_id in keep]
        return cls(mapping, tuple(apps), tuple(pixels))

    def need_apps(self) -> tuple[App, ...]:
        if not self.apps:
            raise ConfigError(
                "the mapping file lists no app ([[apps]]) of an account the token may use"
            )
        return self.apps


class Generator:
    """One format's generator: the three functions of its module."""

    def __init__(
        self,
        valid: Callable[[random.Random, datetime, World], Record],
        dropped: Callable[[random.Random, Record], bytes],
        broken: Callable[[random.Random, Record], bytes],
    ):
        self.valid, self.dropped, self.broken = valid, dropped, broken

    def generate(
        self,
        count: int,
        world: World,
        now: datetime,
        *,
        invalid_ratio: float,
        opt_out_ratio: float,
        seed: int,
    ) -> Iterator[Synthetic]:
        rng = random.Random(seed)
        for _ in range(count):
            record = self.valid(rng, now, world)
            roll = rng.random()
            if roll < invalid_ratio:
                yield Synthetic(self.broken(rng, record), "dead_letter")
            elif roll < invalid_ratio + opt_out_ratio:
                yield Synthetic(self.dropped(rng, record), "drop")
            else:
                yield Synthetic(orjson.dumps(record), "deliver")


def device_id(rng: random.Random, os_type: str) -> str:
    """An IDFA (upper case, as iOS gives it) or an AdID (lower case, as Android gives it)."""
    text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return text.upper() if os_type == "IOS" else text


ZERO_DEVICE_ID = "00000000-0000-0000-0000-000000000000"


def moment(rng: random.Random, now: datetime) -> datetime:
    return now - timedelta(seconds=rng.randint(0, 86_400), milliseconds=rng.randint(0, 999))


def iso_ms(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"2001:db8::{rng.randint(1, 0xFFFF):x}"
    first, second, third = rng.choice((192, 198, 203)), rng.randint(0, 255), rng.randint(0, 255)
    return f"{first}.{second}.{third}.{rng.randint(1, 254)}"


def price(rng: random.Random) -> str:
    return f"{rng.choice((0.99, 1.99, 4.99, 9.99, 19.99, 49.99, rng.randint(100, 9999) / 100)):.2f}"


def dumps(record: Record) -> bytes:
    return orjson.dumps(record)
