"""The bench's arithmetic: accounting of every event, duplicates per kill, steady rate,
percentiles, dead-letter identities, targets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from relay.formats.base import OutboundEvent
from relay.pipeline import outbound
from relay.tools.bench.accounting import account, duplicates_between
from relay.tools.bench.e2e import steady_rate
from relay.tools.bench.events import dead_letter_identity
from relay.tools.bench.latency import percentile, stage_split, worst_seconds
from relay.tools.bench.results import Target


def web_entry(conversion_id: str, at: str = "2026-12-01T10:00:00.000Z") -> dict[str, Any]:
    return {"received_at": at, "conversion": {"conversion_id": conversion_id}}


def test_every_event_is_delivered_dead_lettered_or_lost() -> None:
    entries = [web_entry("a"), web_entry("a"), web_entry("b"), web_entry("zzz")]
    result = account(["a", "b", "c", "d"], entries, ["c", "b"], "web")
    assert result.to_json() == {
        "produced": 4,
        "delivered": 2,  # a, b
        "dead_lettered": 1,  # c (b was delivered after all)
        "lost": 1,  # d
        "duplicates": 1,  # a twice
        "unexpected": 1,  # zzz was never produced
    }


def test_app_identities_are_the_conversion_time() -> None:
    entries = [{"received_at": "2026-12-01T10:00:00.000Z", "params": {"conversion_time": "t1"}}]
    assert account(["t1", "t2"], entries, [], "mobile").lost == 1


def test_duplicates_are_counted_after_the_kill_they_follow() -> None:
    entries = [
        web_entry("a", "2026-12-01T10:00:01.000Z"),
        web_entry("b", "2026-12-01T10:00:02.000Z"),
        web_entry("a", "2026-12-01T10:00:05.000Z"),  # after kill 1
        web_entry("b", "2026-12-01T10:00:09.000Z"),  # after kill 2
        web_entry("a", "2026-12-01T10:00:09.500Z"),  # after kill 2
    ]
    t0 = 1_796_119_200.0  # 2026-12-01T10:00:00Z
    assert duplicates_between(entries, "web", [t0 + 3, t0 + 8]) == [1, 2]


def test_steady_rate_starts_the_clock_at_the_first_acceptance() -> None:
    entries = [web_entry(str(i), f"2026-12-01T10:00:0{s}.000Z") for i, s in enumerate([0, 0, 1, 2])]
    rate, window = steady_rate(entries)
    assert window == 2.0 and rate == 1.0  # two events after the first instant, in 2 s
    assert steady_rate(entries[:1]) == (None, 0.0)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7.0], 99) == 7.0


def test_dead_letters_are_recognized_in_every_shape() -> None:
    event = OutboundEvent(
        kind="web", budget_key="18ce552mlaq", target="o8z6j", payload={"conversion_id": "c1"}
    )
    assert dead_letter_identity(outbound.encode(event), "web") == "c1"
    assert dead_letter_identity(orjson.dumps({"conversion_id": "c2"}), "web") == "c2"  # input
    v1 = {"v": 1, "kind": "app", "payload": {"conversion_time": "t"}}
    assert dead_letter_identity(orjson.dumps(v1), "mobile") == "t"
    assert dead_letter_identity(b"{not json", "web") is None


@pytest.mark.parametrize(
    ("target", "passed"),
    [
        (Target("x", 0.5, ">=", 0.4), True),
        (Target("x", 0.3, ">=", 0.4), False),
        (Target("x", 31.0, "<=", 30.0), False),
        (Target("x", 0, "==", 0), True),
        (Target("x", None, "<=", 30.0), False),
    ],
)
def test_targets(target: Target, passed: bool) -> None:
    assert target.passed is passed


def test_latency_splits_at_the_outbound_record() -> None:
    t0_ms = 1_796_119_200_000  # 2026-12-01T10:00:00Z
    value = outbound.encode(OutboundEvent("web", "acct", "px1", {"conversion_id": "a"}))
    record = ConsumerRecord(
        topic="p.outbound",
        partition=0,
        offset=0,
        timestamp=t0_ms + 30,
        timestamp_type=0,
        key=b"acct",
        value=value,
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=len(value),
        headers=[],
    )
    entries = [web_entry("a", "2026-12-01T10:00:00.250Z"), web_entry("a", "2026-12-01T10:00:09Z")]
    split = stage_split([record], entries, {"a": t0_ms}, "web")
    assert split["ingest_p99_ms"] == 30  # append -> outbound record
    assert split["deliver_p99_ms"] == 220  # outbound record -> the first acceptance


def test_the_worst_seconds_of_a_feed_are_named_by_their_p99() -> None:
    t0_ms = 1_796_119_200_000  # 2026-12-01T10:00:00Z
    appended = {"a": t0_ms, "b": t0_ms + 1_100, "c": t0_ms + 2_050, "d": t0_ms + 2_500}
    entries = [
        web_entry("a", "2026-12-01T10:00:00.100Z"),  # second 0: 100 ms
        web_entry("b", "2026-12-01T10:00:02.100Z"),  # second 1: 1,000 ms
        web_entry("c", "2026-12-01T10:00:02.350Z"),  # second 2: 300 and 200 ms
        web_entry("d", "2026-12-01T10:00:02.700Z"),
        web_entry("b", "2026-12-01T10:00:09Z"),  # a duplicate: only the first acceptance counts
    ]
    assert worst_seconds(entries, appended, "web", top=2) == [
        {"second": 1, "p99_ms": 1000.0},
        {"second": 2, "p99_ms": 300.0},
    ]
