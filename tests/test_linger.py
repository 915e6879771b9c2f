"""The linger of web batches: the set one, or until full while the stage is behind."""

from __future__ import annotations

from aiokafka import TopicPartition

from relay.pipeline.linger import BACKLOG_LINGER_S, BACKLOG_MIN_RECORDS, Linger

TP0, TP1 = TopicPartition("t.outbound", 0), TopicPartition("t.outbound", 1)


def test_a_backlog_with_room_in_the_buffer_lingers_until_batches_are_full() -> None:
    linger = Linger(0.2)
    assert linger.now_s == 0.2
    linger.observe(TP0, BACKLOG_MIN_RECORDS // 2)
    linger.observe(TP1, BACKLOG_MIN_RECORDS // 2)  # the partitions add up
    assert not linger.update(buffer_has_room=True)
    assert linger.backlog and linger.now_s == BACKLOG_LINGER_S


def test_a_full_buffer_or_a_read_backlog_brings_the_set_linger_back() -> None:
    linger = Linger(0.2)
    linger.observe(TP0, 10 * BACKLOG_MIN_RECORDS)
    linger.update(buffer_has_room=True)
    assert linger.update(buffer_has_room=False)  # shorter now: the lanes must look again
    assert linger.now_s == 0.2
    linger.update(buffer_has_room=True)
    linger.observe(TP0, 0)
    assert linger.update(buffer_has_room=True) and not linger.backlog
    assert not linger.update(buffer_has_room=True)  # no change, no wake-up


def test_revoked_partitions_leave_the_backlog() -> None:
    linger = Linger(0.2)
    linger.observe(TP0, 10 * BACKLOG_MIN_RECORDS)
    linger.forget({TP0})
    linger.update(buffer_has_room=True)
    assert not linger.backlog
