"""One poll of the outbound (and delayed) topics -> the lanes' pending events: the deliver
stage's per-record loop, synchronous so that it compiles with the hot path
(relay/hotpath.py).

Each record is split into its events (a bundle carries many, all at its offset); an event
whose ledger key X already has, or whose first copy is held here, is a replay and finishes at
once; every other one joins the lane of its account and credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relay.observability.latency import origin_timestamp_ms
from relay.pipeline import outbound
from relay.pipeline.dlq import carried_headers
from relay.pipeline.lanes import Lane, Pending
from relay.pipeline.ledger import DeliveredLedger, ledger_digest
from relay.pipeline.linger import opened_at
from relay.pipeline.offsets import OffsetTracker
from relay.pipeline.parking import origin_of, park_count

UNDECODABLE = outbound.Routed("web", "-", "-", "-", b"{}")  # the placeholder of a broken record


class Intake:
    """What one `handle` call took in: the lanes it touched, the broken records, the count of
    replays skipped."""

    def __init__(
        self,
        tracker: OffsetTracker,
        ledger: DeliveredLedger | None,
        held_keys: dict[str, Any],
        lane_of: Callable[[outbound.Routed], Lane],
        now: float,
        epoch_to_clock: float,
        linger_s: float,
    ) -> None:
        self.tracker = tracker
        self.ledger = ledger
        self.held_keys = held_keys  # ledger key -> its partition, of every event held
        self.lane_of = lane_of
        self.now = now
        self.epoch_to_clock = epoch_to_clock  # the clock's reading at the epoch, in s
        self.linger_s = linger_s
        self.touched: set[Lane] = set()
        self.undecodable: list[Pending] = []
        self.duplicates = 0
        self._lanes: dict[tuple[str, str, str], Lane] = {}  # this call's, looked up once

    def add(self, tp: Any, messages: list[Any], delayed: bool) -> int:
        """One fetched partition's records, in order; the number of events they carried."""
        tracker, ledger, held_keys, lanes = self.tracker, self.ledger, self.held_keys, self._lanes
        now, epoch_to_clock, linger_s = self.now, self.epoch_to_clock, self.linger_s
        register = tracker.registrar(tp)
        events = 0
        for msg in messages:
            offset: int = msg.offset
            value: bytes = msg.value or b""
            origin, parked = (origin_of(msg), park_count(msg)) if delayed else (None, 0)
            try:
                carried = outbound.decode_all(value)
            except outbound.UnknownOutbound:
                register(offset, 1)
                self.undecodable.append(
                    Pending(tp, offset, msg.key, value, UNDECODABLE, origin, parked)
                )
                events += 1
                continue
            # A bundle's events share its offset: it finishes when each of them has.
            register(offset, len(carried))
            events += len(carried)
            bundled = value.startswith(outbound.BUNDLE_TAG)
            for routed in carried:
                key = routed.ledger_key
                if key in held_keys or (
                    ledger is not None and ledger.seen_digest(ledger_digest(key))
                ):
                    # A replay: X has it, or its first copy waits here (a copy is written
                    # after it on the same partition, so the commit cannot pass that first).
                    tracker.finish(tp, offset)
                    self.duplicates += 1
                    continue
                held_keys[key] = tp
                own = routed.record if bundled else value  # a bundle's part: an R3 value
                pending = Pending(tp, offset, msg.key, own, routed, origin, parked)
                pending.timestamp_ms = msg.timestamp
                if msg.headers:
                    pending.headers = carried_headers(msg.headers)
                if delayed or pending.headers:
                    pass  # parked or redriven: counted from its own append, as before R3
                elif routed.origin_ms >= 0:  # R3: the input's timestamp in the routing line
                    pending.timestamp_ms = routed.origin_ms
                elif msg.headers:  # R2: in a header
                    pending.timestamp_ms = origin_timestamp_ms(msg.headers, msg.timestamp)
                slot = (routed.kind, routed.target, routed.budget_key)
                lane = lanes.get(slot)
                if lane is None:
                    lane = lanes[slot] = self.lane_of(routed)
                    self.touched.add(lane)
                lane.add(pending, opened_at(now, pending.timestamp_ms, epoch_to_clock, linger_s))
        return events
