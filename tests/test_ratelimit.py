import pytest

from relay.pipeline.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_empty_and_refills_at_limit_per_window() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60_000, 900, clock)
    assert bucket.wait_time(500) == pytest.approx(500 / (60_000 / 900))
    clock.now += 7.5
    assert bucket.take(500)
    assert not bucket.take(1)


def test_bucket_never_holds_more_than_the_limit() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, 10, clock, start_full=True)
    clock.now += 3600
    assert bucket.take(1000)
    assert not bucket.take(1)


def test_a_full_window_spends_exactly_the_limit() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60_000, 900, clock)
    sent = 0
    while clock.now < 1000.0 + 900:
        wait = bucket.wait_time(500)
        if wait:
            clock.now += wait
            continue
        bucket.take(500)
        sent += 500
    assert 59_000 <= sent <= 60_000


def test_server_headers_and_429_override_local_state() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, 10, clock, start_full=True)
    bucket.observe_server(remaining=100, reset_in_s=5)
    assert not bucket.take(200)
    bucket.observe_server(remaining=0, reset_in_s=5)
    assert bucket.wait_time(1) >= 5
    clock.now += 5.3  # X's reset, plus a margin for clocks a little apart
    assert bucket.wait_time(1) == 0
    bucket.block_for(30)
    assert bucket.wait_time(1) == pytest.approx(30)


def test_cost_above_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(100, 1, FakeClock()).wait_time(101)


def test_x_window_wins_its_limit_and_remaining_and_nothing_refills_before_its_reset() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60_000, 900, clock, wall_clock=lambda: 5_000.0)
    assert bucket.available() == 0  # a new owner starts empty
    clock.now += 0.1
    assert bucket.take(1)
    bucket.settle(1, counted=1)
    bucket.observe_server(remaining=650, reset_in_s=10, limit=700)
    assert bucket.limit == 700 and bucket.available() == 650
    assert bucket.take(500) and bucket.available() == 150  # the next batch: what remains
    clock.now += 5  # no continuous refill inside X's window
    assert bucket.available() == 150
    bucket.settle(500, counted=0)  # X did not count it (a 400 split, a 5xx): refunded
    assert bucket.available() == 650
    clock.now += 5.3
    assert bucket.available() == 700  # X's reset: its whole limit
    assert bucket.take(700)
    clock.now += 1
    assert bucket.available() == 0  # and nothing more until the window after


def test_an_answer_counts_what_is_still_in_flight() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, 10, clock, start_full=True)
    assert bucket.take(300) and bucket.take(200)
    bucket.settle(300, counted=300)
    bucket.observe_server(remaining=700, reset_in_s=5)  # the 200 still in flight count too
    assert bucket.available() == 500


def test_a_429_reset_before_the_known_window_end_still_blocks_until_it() -> None:
    clock = FakeClock()
    wall = [5_000.0]
    bucket = TokenBucket(60_000, 900, clock, wall_clock=lambda: wall[0])
    bucket.observe_server(50_000, 800.0)  # X's window ends in 800 s
    assert bucket.take(500)
    # A 429 announcing its own reset 3.4 s away (a storm, an overload): an earlier reset
    # than the window's, which is no stale answer; nothing may go before it.
    bucket.observe_server(0, 3.4)
    assert bucket.available() == 0
    clock.now += 3.4
    wall[0] += 3.4
    assert bucket.available() == 0, "not before X's reset (and its margin)"
    clock.now += 0.3
    wall[0] += 0.3
    assert bucket.blocked_for() == 0
