from aiokafka import TopicPartition

from relay.pipeline.offsets import OffsetTracker

TP = TopicPartition("t", 0)


def test_commits_only_the_contiguous_finished_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.register(TP, offset)
    tracker.finish(TP, 12)
    assert tracker.to_commit() == {TP: 10}  # 10 still open: nothing past it is safe
    tracker.finish(TP, 10)
    assert tracker.to_commit() == {TP: 11}
    tracker.finish(TP, 11)
    assert tracker.to_commit() == {TP: 13}
    tracker.finish(TP, 13)
    assert tracker.to_commit() == {TP: 14}
    assert tracker.in_flight() == 0


def test_gaps_in_offsets_and_unchanged_offsets_are_not_recommitted() -> None:
    tracker = OffsetTracker()
    tracker.register(TP, 5)
    tracker.register(TP, 9)  # compaction or transaction markers leave gaps
    tracker.finish(TP, 9)
    tracker.finish(TP, 5)
    offsets = tracker.to_commit()
    assert offsets == {TP: 10}
    tracker.mark_committed(offsets)
    assert tracker.to_commit() == {}


def test_forgotten_partitions_ignore_late_finishes() -> None:
    tracker = OffsetTracker()
    tracker.register(TP, 1)
    tracker.forget({TP})
    tracker.finish(TP, 1)
    assert tracker.to_commit() == {}


def test_runs_finish_whole_and_hold_their_records() -> None:
    tracker = OffsetTracker()
    tracker.register_run(TP, 100, 109, 10)
    tracker.register_run(TP, 110, 119, 8)  # gaps inside a run are fine
    tracker.register(TP, 120)
    assert tracker.in_flight() == 19
    tracker.finish_run(TP, 110)
    assert tracker.to_commit() == {TP: 100}  # the first run still open
    assert tracker.in_flight() == 19  # released only in order
    tracker.finish_run(TP, 100)
    assert tracker.to_commit() == {TP: 120}
    assert tracker.in_flight() == 1
    tracker.finish(TP, 120)
    assert tracker.to_commit() == {TP: 121}
    assert tracker.in_flight() == 0


def test_a_run_of_one_record_is_a_record() -> None:
    tracker = OffsetTracker()
    tracker.register_run(TP, 7, 7, 1)
    tracker.finish(TP, 7)
    assert tracker.to_commit() == {TP: 8}
    assert tracker.in_flight() == 0


def test_a_record_of_several_events_finishes_when_each_of_them_has() -> None:
    tracker = OffsetTracker()
    tracker.register(TP, 7, 3)  # a bundle of three events
    tracker.register(TP, 8)
    assert tracker.in_flight() == 4
    tracker.finish(TP, 8)
    tracker.finish(TP, 7)
    tracker.finish(TP, 7)
    assert tracker.to_commit() == {TP: 7}  # one of its events is still out
    assert tracker.in_flight() == 4
    tracker.finish(TP, 7)
    assert tracker.to_commit() == {TP: 9}
    assert tracker.in_flight() == 0
