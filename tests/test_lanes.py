"""Lanes and the lane table, without a broker: batches, held targets, revoked partitions."""

from __future__ import annotations

from aiokafka import TopicPartition

from relay.pipeline.lanes import Lane, LaneTable, Pending
from relay.pipeline.outbound import Routed
from relay.pipeline.ratelimit import TokenBucket

TP0, TP1 = TopicPartition("t.outbound", 0), TopicPartition("t.outbound", 1)


def item(offset: int, kind: str = "web", target: str = "px1", tp: TopicPartition = TP0) -> Pending:
    return Pending(tp, offset, b"acct", b"x" * 10, Routed(kind, "acct", target, "k", b"{}"))  # type: ignore[arg-type]


def lane(*, told: bool = True) -> Lane:
    """A lane whose bucket has X's word on the budget (`told`), or not yet."""
    bucket = TokenBucket(1000, 10, start_full=True)
    if told:
        bucket.observe_server(remaining=1000, reset_in_s=10)
    return Lane("acct", bucket, batch_size=3, linger_s=1.0)


def test_web_events_batch_per_target_and_app_events_go_one_per_request() -> None:
    one = lane()
    for offset in range(4):
        one.add(item(offset), now=0.0)
    one.add(item(9, "app", "333903271"), now=0.0)
    assert [len(b.items) for b in one.ready] == [3, 1]
    assert one.flush_due(0.5) == 0.5  # the open web batch lingers
    one.flush_due(1.0)
    assert [(b.kind, len(b.items)) for b in one.ready] == [("web", 3), ("app", 1), ("web", 1)]
    assert one.held == 5 and one.held_bytes == 50


def test_the_first_request_before_x_told_the_budget_does_not_linger() -> None:
    first = lane(told=False)
    first.add(item(0), now=0.0)
    assert first.flush_due(0.0) is None  # closed at once: nothing left open
    assert [len(b.items) for b in first.ready] == [1]
    first.bucket.in_flight = 1  # the first request asks X: what comes meanwhile batches
    first.add(item(1), now=0.0)
    assert first.flush_due(0.5) == 0.5


def test_a_held_target_waits_aside_and_the_others_go() -> None:
    one = lane()
    for offset in range(3):
        one.add(item(offset, target="refused"), now=0.0)
    one.add(item(5, target="fine"), now=0.0)
    one.flush_due(0.0, everything=True)
    first = one.next_ready(lambda kind, target: target == "refused")
    assert first is not None and first.target == "fine"
    probe = one.take_waiting(("web", "refused"))
    assert len(probe.items) == 1  # a probe risks one event
    one.release_waiting(lambda kind, target: False)
    assert [b.target for b in one.ready] == ["refused", "fine"]


def test_a_batch_larger_than_the_budget_left_is_cut_to_it() -> None:
    one = lane()
    for offset in range(3):
        one.add(item(offset), now=0.0)
    batch = one.ready[0]
    sent = one.take(batch, 2)
    assert [p.offset for p in sent.items] == [0, 1]
    assert [p.offset for p in one.ready[0].items] == [2]


def test_revoked_partitions_take_their_events_and_their_buckets() -> None:
    table = LaneTable(lambda: TokenBucket(1000, 10))
    table.bucket("b").observe_server(remaining=900, reset_in_s=5)  # what X told this owner
    kept, revoked = Lane("a", table.bucket("a"), 3, 1.0), Lane("b", table.bucket("b"), 3, 1.0)
    table.lanes.update(a=kept, b=revoked)
    kept.add(item(1, tp=TP0), now=0.0)
    revoked.add(item(2, tp=TP1), now=0.0)
    table.forget_partitions({TP1})
    dropped = revoked.drop_partitions({TP1})
    assert [p.offset for p in dropped] == [2] and revoked.held == 0
    assert "b" not in table.buckets and "a" in table.buckets
    assert table.bucket("b").available() == 0  # a new bucket: empty again, X's word forgotten
