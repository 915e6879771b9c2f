"""The response policy on a table of cases: every row of the classification, no broker."""

from __future__ import annotations

import random

import pytest

from relay.pipeline import policy
from relay.pipeline.policy import (
    Action,
    BatchState,
    DeadLetter,
    Done,
    HoldCredential,
    HoldTarget,
    RetryAfter,
    RetryRules,
    Split,
)
from relay.xads.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    RateLimitInfo,
    ServerError,
    TransportError,
    Unauthorized,
)

NOW = 1_800_000_000.0
RULES = RetryRules(max_attempts=3, retry_for_s=3600, base_s=0.5, cap_s=60)


def state(
    size: int = 10,
    attempts: int = 1,
    charged: int = 0,
    age_s: float = 0.0,
    x_healthy: bool = True,
) -> BatchState:
    return BatchState(size, attempts, charged, NOW - age_s, NOW, x_healthy)


def server(status: int, code: str | None = None, **limits: float) -> ServerError:
    return ServerError("x", status=status, code=code, rate_limit=RateLimitInfo(**limits))  # type: ignore[arg-type]


CASES: list[tuple[str, ApiError | int, BatchState, Action]] = [
    ("2xx", 10, state(), Done(10)),
    ("2xx, fewer processed", 7, state(), Done(7)),
    ("401", Unauthorized("x", status=401), state(), HoldCredential()),
    (
        "429 with X's reset",
        RateLimited("x", status=429, rate_limit=RateLimitInfo(remaining=0, reset_epoch_s=NOW + 42)),
        state(),
        RetryAfter(42.0, "rate_limited", counts_attempt=False, block_account=True),
    ),
    (
        "429 with Retry-After",
        RateLimited("x", status=429, rate_limit=RateLimitInfo(retry_after_s=7)),
        state(charged=2),
        RetryAfter(7.0, "rate_limited", counts_attempt=False, block_account=True),
    ),
    (
        "429 whose Retry-After ends before X's reset",
        RateLimited(
            "x",
            status=429,
            rate_limit=RateLimitInfo(remaining=0, reset_epoch_s=NOW + 3.4, retry_after_s=3),
        ),
        state(),
        RetryAfter(pytest.approx(3.4), "rate_limited", counts_attempt=False, block_account=True),  # type: ignore[arg-type]
    ),
    ("400, a batch", BadRequest("x", status=400), state(size=500), Split()),
    ("400, one event", BadRequest("x", status=400), state(size=1), DeadLetter("rejected")),
    ("403 account", Forbidden("x", status=403, code="ACCOUNT_NOT_FOUND"), state(), HoldTarget()),
    ("404 pixel", NotFound("x", status=404, code="WEB_EVENT_TAG_NOT_FOUND"), state(), HoldTarget()),
    ("404 app", NotFound("x", status=404, code="MACT_APP_NOT_FOUND"), state(), HoldTarget()),
    (
        "404 tag of one conversion type",
        NotFound("x", status=404, code="APP_EVENT_TAG_NOT_FOUND"),
        state(size=1),
        DeadLetter("rejected"),
    ),
    ("other 4xx", ApiError("x", status=409), state(), DeadLetter("rejected")),
    (
        "2xx without data",
        ApiError("success answer without data", status=200),
        state(),
        DeadLetter("rejected"),
    ),
    (
        "503 with Retry-After, X healthy",
        server(503, retry_after_s=30),
        state(),
        RetryAfter(30.0, "outage", counts_attempt=True),
    ),
    (
        "500, X healthy, attempts spent: the batch is at fault",
        server(500),
        state(attempts=3, charged=2),
        DeadLetter("retries_exhausted"),
    ),
    (
        "500, X failing: an outage, not charged",
        server(500, retry_after_s=5),
        state(attempts=3, charged=2, x_healthy=False),
        RetryAfter(5.0, "outage", counts_attempt=False),
    ),
    (
        "timeout, X failing",
        TransportError("timed out"),
        state(attempts=9, charged=2, x_healthy=False),
        RetryAfter(60.0, "outage", counts_attempt=False),  # 0.5 * 2**8, capped
    ),
    (
        "outage older than RELAY_RETRY_FOR_S",
        server(503),
        state(age_s=3600, x_healthy=False),
        DeadLetter("retries_exhausted"),
    ),
    (
        "408, charged even while X fails",
        server(408, retry_after_s=1),
        state(charged=0, x_healthy=False),
        RetryAfter(1.0, "error", counts_attempt=True),
    ),
    (
        "423, attempts spent",
        server(423),
        state(charged=2, x_healthy=False),
        DeadLetter("retries_exhausted"),
    ),
]


class TopRng(random.Random):
    """Full jitter at its ceiling, so that the table can name the delay."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("answer", "batch", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_answer_gets_its_action(
    answer: ApiError | int, batch: BatchState, expected: Action
) -> None:
    assert policy.decide(answer, batch, RULES, rng=TopRng()) == expected


def test_a_reset_beside_remaining_budget_is_no_retry_hint() -> None:
    err = server(503, remaining=120, reset_epoch_s=NOW + 800)
    action = policy.decide(err, state(), RULES, rng=TopRng())
    assert action == RetryAfter(0.5, "outage", counts_attempt=True)
