"""What the sandbox does wrong on purpose: the `Faults` to inject, and the dice that pick them.

Per request to X's routes (never `/_sandbox/*`; only paths under `path_prefix` when set):
1. during a 429 storm (`storm_s` seconds from when the faults were set, by the sandbox's
   clock), a 429 with the account rate-limit headers and `Retry-After`;
2. else added latency: `latency_ms` plus up to `latency_jitter_ms`;
3. then one draw decides: drop the connection (`drop_rate`), hang (`hang_rate`: no answer
   until the client gives up, at most `hang_max_s`, then drop), an error status
   (`error_rates`, e.g. {500: 0.1, 503: 0.05}), or the real endpoint.
With a `seed` the sequence of decisions repeats exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from relay.errors import ConfigError

DEFAULT_HANG_MAX_S: Final = 30.0
MAX_HANG_S: Final = 600.0
MAX_LATENCY_MS: Final = 60_000.0
DEFAULT_RETRY_AFTER_S: Final = 1
DROP: Final = "drop"
HANG: Final = "hang"

_FIELDS: Final = frozenset(
    {
        "error_rates",
        "latency_ms",
        "latency_jitter_ms",
        "hang_rate",
        "hang_max_s",
        "drop_rate",
        "storm_s",
        "retry_after_s",
        "seed",
        "path_prefix",
    }
)


_NUMBERS: Final = (
    "latency_ms",
    "latency_jitter_ms",
    "hang_rate",
    "hang_max_s",
    "drop_rate",
    "storm_s",
)


class FaultsError(ConfigError):
    """Faults that cannot be injected (a rate out of 0..1, an unknown status, ...)."""


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults to inject; validated when built. The default injects nothing."""

    error_rates: Mapping[int, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    hang_rate: float = 0.0
    hang_max_s: float = DEFAULT_HANG_MAX_S
    drop_rate: float = 0.0
    storm_s: float = 0.0
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    seed: int | None = None
    path_prefix: str | None = None

    def __post_init__(self) -> None:
        for status, rate in self.error_rates.items():
            if type(status) is not int or not 400 <= status <= 599:
                raise FaultsError(f"error status must be 400..599, got {status!r}")
            _check_rate(f"error rate of {status}", rate)
        _check_rate("hang_rate", self.hang_rate)
        _check_rate("drop_rate", self.drop_rate)
        if self.total_rate > 1:
            raise FaultsError("error, hang and drop rates must add up to at most 1")
        _check_range("latency_ms", self.latency_ms, MAX_LATENCY_MS)
        _check_range("latency_jitter_ms", self.latency_jitter_ms, MAX_LATENCY_MS)
        _check_range("hang_max_s", self.hang_max_s, MAX_HANG_S)
        _check_range("storm_s", self.storm_s, math.inf)
        if type(self.retry_after_s) is not int or self.retry_after_s < 0:
            raise FaultsError("retry_after_s must be a non-negative integer")
        if self.seed is not None and type(self.seed) is not int:
            raise FaultsError("seed must be an integer")
        if self.path_prefix is not None and not self.path_prefix.startswith("/"):
            raise FaultsError("path_prefix must start with /")
        # Frozen for real: the rates may be shown while requests read them.
        object.__setattr__(self, "error_rates", MappingProxyType(dict(self.error_rates)))

    @property
    def total_rate(self) -> float:
        return sum(self.error_rates.values()) + self.hang_rate + self.drop_rate

    @property
    def active(self) -> bool:
        return bool(self.total_rate or self.latency_ms or self.latency_jitter_ms or self.storm_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "error_rates": {str(s): r for s, r in sorted(self.error_rates.items())},
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.latency_jitter_ms,
            "hang_rate": self.hang_rate,
            "hang_max_s": self.hang_max_s,
            "drop_rate": self.drop_rate,
            "storm_s": self.storm_s,
            "retry_after_s": self.retry_after_s,
            "seed": self.seed,
            "path_prefix": self.path_prefix,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Faults:
        """Faults from `POST /_sandbox/faults`; FaultsError with a clear message."""
        if not isinstance(raw, dict):
            raise FaultsError("faults must be a JSON object")
        unknown = sorted(str(k) for k in raw if k not in _FIELDS)
        if unknown:
            raise FaultsError(f"unknown fault field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {name: _number(raw, name) for name in _NUMBERS}
        for name in ("retry_after_s", "seed"):
            value = raw.get(name)
            if value is not None and type(value) is not int:
                raise FaultsError(f"{name} must be an integer")
            values[name] = value
        prefix = raw.get("path_prefix")
        if prefix is not None and type(prefix) is not str:
            raise FaultsError("path_prefix must be a string")
        values["path_prefix"] = prefix
        rates = raw.get("error_rates")
        if rates is not None and not isinstance(rates, dict):
            raise FaultsError('error_rates must be an object like {"500": 0.1}')
        values["error_rates"] = {_status(s): _rate(s, r) for s, r in (rates or {}).items()}
        return cls(**{k: v for k, v in values.items() if v is not None})


def parse_error_rates(items: Iterable[str]) -> dict[int, float]:
    """`["500=0.1", "503=0.05"]` (the CLI's `--error-rate STATUS=RATE`) -> {500: 0.1, 503: 0.05}."""
    rates: dict[int, float] = {}
    for item in items:
        status, sep, rate = item.partition("=")
        try:
            if not sep:
                raise ValueError
            code, value = int(status), float(rate)
        except ValueError:
            raise FaultsError(f"error rate {item!r} is not STATUS=RATE, e.g. 503=0.05") from None
        if not 400 <= code <= 599:
            raise FaultsError(f"error status must be 400..599, got {code}")
        rates[code] = value
    return rates


def _status(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 400 <= int(text) <= 599):
        raise FaultsError(f"error status must be 400..599, got {text!r}")
    return int(text)


def _rate(status: str, rate: Any) -> float:
    _check_rate(f"error rate of {status}", rate)
    return float(rate)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _number(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise FaultsError(f"{name} must be a number")
    return float(value)


def _check_rate(name: str, rate: Any) -> None:
    if not _is_number(rate) or not 0 <= rate <= 1:
        raise FaultsError(f"{name} must be a number from 0 to 1, got {rate!r}")


def _check_range(name: str, value: Any, top: float) -> None:
    if not _is_number(value) or not 0 <= value <= top:
        raise FaultsError(f"{name} must be a number from 0 to {top}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: `storm_until` (429), else `latency_s`, then `outcome`
    (DROP, HANG, an error status, or None for the real endpoint)."""

    storm_until: float | None = None
    latency_s: float = 0.0
    outcome: str | int | None = None


PASS: Final = Decision()


class FaultInjector:
    """The faults in force and their random source; `decide` is O(1) per request."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.storm_until = 0.0
        self._active = False  # kept, not computed: every request asks
        self._rng = random.Random()

    def set(self, faults: Faults, now: float) -> None:
        self.faults = faults
        self._active = faults.active
        self._rng = random.Random(faults.seed)
        self.storm_until = now + faults.storm_s if faults.storm_s else 0.0

    def clear(self) -> None:
        self.set(Faults(), 0.0)

    def applies_to(self, path: str) -> bool:
        if not self._active:
            return False
        prefix = self.faults.path_prefix
        return prefix is None or path.startswith(prefix)

    def decide(self, now: float) -> Decision:
        faults = self.faults
        if now < self.storm_until:
            return Decision(storm_until=self.storm_until)
        latency_s = faults.latency_ms / 1000
        if faults.latency_jitter_ms:
            latency_s += self._rng.uniform(0, faults.latency_jitter_ms) / 1000
        outcome: str | int | None = None
        if faults.total_rate:
            draw = self._rng.random()
            outcomes: list[tuple[str | int, float]] = [
                (DROP, faults.drop_rate),
                (HANG, faults.hang_rate),
                *faults.error_rates.items(),
            ]
            for candidate, rate in outcomes:
                if draw < rate:
                    outcome = candidate
                    break
                draw -= rate
        if not latency_s and outcome is None:
            return PASS
        return Decision(latency_s=latency_s, outcome=outcome)

    def to_json(self, now: float) -> dict[str, Any]:
        body = self.faults.to_json()
        body["active"] = self.faults.active
        body["storm_remaining_s"] = max(self.storm_until - now, 0.0)
        return body
