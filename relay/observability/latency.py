"""The input record's Kafka timestamp, carried to the deliver stage for end-to-end latency.

Ingest writes the input record's timestamp into the outbound routing line (not into the
outbound record's own timestamp, which time-based retention reads); delivery reads it back.
Records of earlier releases (outbound R2) carry it in the header named here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

ORIGIN_TIMESTAMP_HEADER: Final = "relay.origin.timestamp"


def origin_timestamp_ms(headers: Iterable[tuple[str, bytes]] | None, fallback_ms: int) -> int:
    """The input's timestamp from the header, else `fallback_ms` (the record's own)."""
    for name, value in headers or ():
        if name == ORIGIN_TIMESTAMP_HEADER:
            try:
                return int(value)
            except ValueError:
                break
    return fallback_ms


class BatchHistogram(Collector):
    """A histogram by one label, observed a batch at a time (no lock, no per-event label
    lookup: delivery observes every event). Exposed like prometheus_client's Histogram."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        values: Iterable[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = None,
    ):
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(float(b) for b in buckets)
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        for value in values:
            self._series(value)
        if registry is not None:
            registry.register(self)

    def _series(self, value: str) -> list[int]:
        counts = self._counts.get(value)
        if counts is None:
            counts = self._counts[value] = [0] * (len(self.bounds) + 1)  # the last is +Inf
            self._sums[value] = 0.0
        return counts

    def observe_many(self, value: str, observations: Iterable[float]) -> None:
        counts, bounds = self._series(value), self.bounds
        total = 0.0
        for observation in observations:
            counts[bisect_left(bounds, observation)] += 1  # le: bound >= observation
            total += observation
        self._sums[value] += total

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=[self.label])]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, counts in self._counts.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else _bound(bound), cumulative))
            family.add_metric([value], buckets, self._sums[value])
        return [family]


def _bound(bound: float) -> str:
    # Like prometheus_client: 1.0 -> "1.0", 0.05 -> "0.05".
    return repr(float(bound))
