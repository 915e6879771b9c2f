"""The linger of web batches: the set one, or until full while the stage is behind."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from relay.pipeline.linger import BACKLOG_LINGER_S, BACKLOG_MIN_RECORDS, Linger, opened_at

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


def test_a_batch_lingers_from_its_first_events_append_not_from_its_read() -> None:
    now, to_clock = 100.0, 100.0 - 1_000.0  # this clock at 100 s is epoch 1,000 s
    assert opened_at(now, 999_950, to_clock, 0.2) == pytest.approx(99.95)  # 50 ms ago
    assert opened_at(now, 999_810, to_clock, 0.2) == pytest.approx(99.81)


def test_an_event_older_than_the_linger_is_behind_and_its_batch_lingers_from_now() -> None:
    # Catching up, requests stay full: one per fetch would cost more CPU per event.
    now, to_clock = 100.0, 100.0 - 1_000.0
    assert opened_at(now, 999_790, to_clock, 0.2) == now
    assert opened_at(now, 990_000, to_clock, 0.2) == now


def test_an_append_time_ahead_of_this_clock_or_unknown_lingers_from_now() -> None:
    now, to_clock = 100.0, 100.0 - 1_000.0
    assert opened_at(now, 1_000_500, to_clock, 0.2) == now  # the producer's clock is ahead
    assert opened_at(now, -1, to_clock, 0.2) == now  # no timestamp
