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
