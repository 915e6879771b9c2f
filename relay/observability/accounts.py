"""Per-account budget state for the top-N accounts, the rest summed as `account="other"`.

Read at scrape time from whatever holds the accounts (the deliver stage's lanes), so that no
series of an account that left the top N lingers, and the label has at most N + 1 values.
The accounts ranked first are those with the most events held, then the longest wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OTHER: Final = "other"
MAX_TRACKED_MATCH_ACCOUNTS: Final = 100_000


@dataclass(frozen=True, slots=True)
class AccountState:
    account: str
    remaining_events: float
    throttle_wait_s: float
    held_events: int


AccountSource = Callable[[], Iterable[AccountState]]


class _Bucket(Protocol):
    tokens: float

    def wait_time(self, cost: int) -> float: ...


class _Lane(Protocol):
    @property
    def bucket(self) -> _Bucket: ...

    @property
    def held(self) -> int: ...


def lane_states(lanes: Mapping[str, _Lane]) -> Iterator[AccountState]:
    """AccountState of every lane (budget key -> lane with a token bucket)."""
    for key, lane in list(lanes.items()):
        wait_s = lane.bucket.wait_time(1)  # also refills, so `tokens` is current
        yield AccountState(key, lane.bucket.tokens, wait_s, lane.held)


class AccountsCollector(Collector):
    def __init__(self, top_n: int, registry: CollectorRegistry | None = None):
        if top_n < 0:
            raise ValueError("top_n must not be negative")
        self.top_n = top_n
        self.source: AccountSource = lambda: ()
        # account -> [delivered, weak]: cumulative since the worker started.
        self._matches: dict[str, list[int]] = {}
        if registry is not None:
            registry.register(self)

    def observe_matches(self, account: str, delivered: int, weak: int) -> None:
        counts = self._matches.get(account)
        if counts is None:
            if len(self._matches) >= MAX_TRACKED_MATCH_ACCOUNTS:
                self._matches.clear()
            counts = self._matches[account] = [0, 0]
        counts[0] += delivered
        counts[1] += weak

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self.source()))

    def _families(self, states: Iterable[AccountState] = ()) -> Iterator[Metric]:
        ranked = sorted(states, key=lambda s: (-s.held_events, -s.throttle_wait_s, s.account))
        top, rest = ranked[: self.top_n], ranked[self.top_n :]
        remaining = GaugeMetricFamily(
            "relay_account_budget_remaining_events",
            "Events the account may still send now (token bucket), top-N accounts.",
            labels=["account"],
        )
        wait = GaugeMetricFamily(
            "relay_account_throttle_wait_seconds",
            "How long the account's next event waits for budget now, top-N accounts.",
            labels=["account"],
        )
        held = GaugeMetricFamily(
            "relay_account_held_events",
            "Events of the account held in memory, top-N accounts.",
            labels=["account"],
        )
        weak = GaugeMetricFamily(
            "relay_account_weak_match_ratio",
            "Share of the account's delivered events without a click id or device id.",
            labels=["account"],
        )
        count = GaugeMetricFamily("relay_accounts", "Accounts this worker delivers for now.")
        for state in top:
            remaining.add_metric([state.account], state.remaining_events)
            wait.add_metric([state.account], state.throttle_wait_s)
            held.add_metric([state.account], state.held_events)
        remaining.add_metric([OTHER], sum(s.remaining_events for s in rest))
        wait.add_metric([OTHER], max((s.throttle_wait_s for s in rest), default=0.0))
        held.add_metric([OTHER], sum(s.held_events for s in rest))
        other_delivered = other_weak = 0
        top_names = {s.account for s in top}
        for account, (delivered, weak_count) in self._matches.items():
            if account in top_names:
                weak.add_metric([account], weak_count / delivered if delivered else 0.0)
            else:
                other_delivered += delivered
                other_weak += weak_count
        weak.add_metric([OTHER], other_weak / other_delivered if other_delivered else 0.0)
        count.add_metric([], len(ranked))
        yield from (remaining, wait, held, weak, count)
