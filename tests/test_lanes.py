"""Lanes and the lane table, without a broker: batches, held targets, revoked partitions."""

from __future__ import annotations

import sys

from aiokafka import TopicPartition

from relay.pipeline.fifo import Fifo
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


def test_a_lane_behind_its_linger_sends_one_fuller_batch_per_pixel() -> None:
    one = Lane("acct", TokenBucket(1000, 10, start_full=True), batch_size=5, linger_s=0.0)
    for offset in range(3):  # three lingers expire before the lane gets to send
        one.add(item(offset), now=float(offset))
        one.flush_due(float(offset))
    assert [len(b.items) for b in one.ready] == [3]
    one.add(item(3), now=3.0)  # gathered since the batch closed: it goes along
    batch = one.next_ready(lambda kind, target: False)
    assert batch is not None and [p.offset for p in batch.items] == [0, 1, 2, 3]
    assert not one.open and one.held == 4


def test_a_retried_batch_keeps_what_x_saw() -> None:
    one = lane()
    one.add(item(0), now=0.0)
    one.flush_due(0.0, everything=True)
    sent = one.take(one.ready[0], 1)
    sent.attempts = 1
    one.retry(sent)
    one.add(item(1), now=0.0)  # open: not taken along by the retry
    retried = one.next_ready(lambda kind, target: False)
    assert retried is sent and [p.offset for p in retried.items] == [0]
    one.flush_due(0.0, everything=True)  # nor joined to it when it closes
    assert [[p.offset for p in b.items] for b in one.ready] == [[0], [1]]


def test_the_linger_can_be_given_per_call() -> None:
    one = lane()
    one.add(item(0), now=0.0)
    assert one.flush_due(0.5, linger_s=30.0) == 29.5
    assert not one.ready
    one.flush_due(0.5, linger_s=0.2)
    assert len(one.ready) == 1


def test_the_ready_queue_exists_only_while_something_is_ready() -> None:
    """10,000 lanes mostly have nothing ready: they keep no queue (an empty tuple reads)."""
    one = lane()
    assert not isinstance(one.ready, Fifo)
    for offset in range(4):
        one.add(item(offset), now=0.0)
    assert [len(b.items) for b in one.ready] == [3]
    batch = one.next_ready(lambda kind, target: False)
    assert batch is not None
    one.take(batch, len(batch.items))
    assert not isinstance(one.ready, Fifo)  # the last ready batch went: so did its queue
    one.retry(batch)
    assert list(one.ready) == [batch]
    assert [p.offset for p in one.take_oldest(10)] == [0, 1, 2, 3]  # parked: all of them
    assert not isinstance(one.ready, Fifo) and one.held == 0


def test_a_lane_names_each_of_its_partitions_once_until_they_are_revoked() -> None:
    one = lane()
    for offset, tp in enumerate((TP0, TP0, TP1, TP0, TP1)):
        one.add(item(offset, tp=tp), now=0.0)
    assert one.partitions == (TP0, TP1)
    one.drop_partitions({TP0})
    assert list(one.partitions) == [TP1] and one.held == 2


def test_the_events_of_a_lane_share_one_record_key_object() -> None:
    one = lane()
    first, second = item(0), item(1)
    second.key = bytes(bytearray(b"acct"))  # equal bytes, another object
    assert second.key is not first.key
    one.add(first, now=0.0)
    one.add(second, now=0.0)
    assert second.key is first.key and second.key == b"acct"
    other = item(2)
    other.key = b"other"  # never another key's object
    one.add(other, now=0.0)
    assert other.key == b"other"


def test_a_lane_with_nothing_open_keeps_no_table_for_it() -> None:
    one = lane()
    empty = sys.getsizeof({})
    one.add(item(0), now=0.0)
    one.flush_due(0.0, everything=True)
    assert not one.open and sys.getsizeof(one.open) == empty
    assert sys.getsizeof(one.opened_at) == empty
