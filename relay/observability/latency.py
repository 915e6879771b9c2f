"""The input record's Kafka timestamp, carried to the deliver stage for end-to-end latency.

Ingest writes the input record's timestamp into the outbound routing line (not into the
outbound record's own timestamp, which time-based retention reads); delivery reads it back.
Records of earlier releases (outbound R2) carry it in the header named here.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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

    def observe_ages(self, value: str, now_ms: float, stamps_ms: Iterable[int]) -> None:
        """Observe `now_ms - stamp` in seconds for each stamp > 0 (one ahead of `now_ms`
        counts as 0): the stamps sorted once and each bucket found by bisection, instead of
        a bisection per event (delivery observes every event)."""
        stamps = sorted(stamps_ms)
        if stamps and stamps[0] <= 0:
            del stamps[: bisect_right(stamps, 0)]
        if not stamps:
            return
        counts, total = self._series(value), len(stamps)
        counted = 0  # ages <= the previous bound
        for i, bound in enumerate(self.bounds):
            # An age <= bound is a stamp >= now_ms - bound.
            at_most = total - bisect_left(stamps, now_ms - bound * 1000)
            counts[i] += at_most - counted
            counted = at_most
        counts[-1] += total - counted
        past = bisect_right(stamps, now_ms)  # stamps ahead of now_ms are ages of 0
        self._sums[value] += (past * now_ms - sum(stamps[:past])) / 1000

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
