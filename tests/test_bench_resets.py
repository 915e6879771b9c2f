"""relay bench faults: which early arrivals at X were sent after the relay learned the reset."""

from __future__ import annotations

import logging

from relay.observability.logs import JsonFormatter
from relay.tools.bench.resets import arrived_after_learning, reset_learned_at, sent_before_reset


def relay_line(account: str, created: float) -> bytes:
    record = logging.LogRecord(
        "relay.pipeline.deliver",
        logging.INFO,
        __file__,
        1,
        "deliver: account %s waits %.3fs for the reset X announced",
        (account, 2.5),
        None,
    )
    record.created = created
    record.account = account
    return JsonFormatter().format(record).encode()


def test_only_arrivals_after_the_relay_learned_the_reset_count() -> None:
    lines = [
        b"not json: a line of aiokafka",
        relay_line("acc1", 1_000.100),
        b'{"message": "something else", "account": "acc1", "ts": "1970-01-01T00:16:40.000Z"}',
    ]
    learned = reset_learned_at(lines)
    assert learned.keys() == {"acc1"} and abs(learned["acc1"][0] - 1_000.1) < 1e-5
    early = [
        # On its way when X answered the 429: it arrived before the relay learned the reset
        # (by less than a millisecond: the log's time has microseconds).
        {"account_id": "acc1", "arrived_at": 1_000.0996, "reset": 1_003.0, "announced_at": 1_000.0},
        # Sent after the relay knew: early in X's sense.
        {"account_id": "acc1", "arrived_at": 1_000.400, "reset": 1_003.0, "announced_at": 1_000.0},
        # Another account, whose reset the relay never learned (no answer reached it yet).
        {"account_id": "acc2", "arrived_at": 1_000.400, "reset": 1_003.0, "announced_at": 1_000.0},
        # A later reset of acc1, announced after the moment the relay learned the first one.
        {"account_id": "acc1", "arrived_at": 1_050.400, "reset": 1_053.0, "announced_at": 1_050.0},
    ]
    assert arrived_after_learning(early, learned) == [early[1]]


def test_the_relays_own_count_of_requests_before_the_reset() -> None:
    went = (
        b'{"ts": "2026-12-01T12:00:00.000001Z", "message": "deliver: a request for account'
        b' acc1 went 0.400s before the reset X announced", "account": "acc1"}'
    )
    assert sent_before_reset([relay_line("acc1", 1_000.0), went, b"plain text line"]) == 1
