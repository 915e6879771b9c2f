"""The response policy: (X's answer or error, the batch's state) -> what to do. Pure.

    2xx                                 Done(counted)
    401                                 HoldCredential           (no attempt counted)
    429                                 RetryAfter(X's reset)    (no attempt counted)
    400, batch of several               Split
    400, one event                      DeadLetter(rejected)
    403, 404 (account, pixel, app)      HoldTarget + dead-letter the batch (rejected)
    404 APP_EVENT_TAG_NOT_FOUND         DeadLetter(rejected)     (one conversion type, not the app)
    other 4xx, unreadable 2xx           DeadLetter(rejected)
    5xx, timeout, connection error:
      within RELAY_RETRY_FOR_S          RetryAfter(backoff or Retry-After)
      X not seen healthy lately         ... and the attempt does not count (an outage)
      X healthy, attempts spent         DeadLetter(retries_exhausted)   (RELAY_MAX_ATTEMPTS:
                                        X answers the others, so this batch is at fault)
      older than RELAY_RETRY_FOR_S      DeadLetter(retries_exhausted)
    408, 423 (X's lock or cancel)       RetryAfter, counted against RELAY_MAX_ATTEMPTS

`Park` is chosen by the lane (over its cap, or its target held), never from an answer.
The code that carries an action out lives in deliver.py; this module only decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from relay.pipeline.retry import full_jitter_delay
from relay.xads.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)

# Not a target's fault: a 404 for one conversion type of an app (its tag is missing).
PER_EVENT_NOT_FOUND: Final = frozenset({"APP_EVENT_TAG_NOT_FOUND"})
OUTAGE_STATUSES: Final = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Done:
    counted: int  # what X says it processed


@dataclass(frozen=True, slots=True)
class RetryAfter:
    delay_s: float
    reason: str  # rate_limited | outage | error
    counts_attempt: bool
    block_account: bool = False  # a 429: the whole account waits, not only this batch


@dataclass(frozen=True, slots=True)
class Split:
    pass


@dataclass(frozen=True, slots=True)
class HoldTarget:
    """Dead-letter this batch with X's code, then stop calling X for its target."""

    error_class: str = "rejected"


@dataclass(frozen=True, slots=True)
class HoldCredential:
    pass


@dataclass(frozen=True, slots=True)
class Park:
    not_before_epoch_s: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    error_class: str  # rejected | retries_exhausted


Action = Done | RetryAfter | Split | HoldTarget | HoldCredential | Park | DeadLetter


@dataclass(frozen=True, slots=True)
class BatchState:
    size: int
    attempts: int  # attempts made, including the one just answered
    charged: int  # earlier attempts counted against RELAY_MAX_ATTEMPTS
    first_attempt_at: float  # epoch seconds
    now: float  # epoch seconds
    x_healthy: bool  # the circuit: most recent requests to X succeeded


@dataclass(frozen=True, slots=True)
class RetryRules:
    max_attempts: int
    retry_for_s: float
    base_s: float
    cap_s: float


def is_outage(err: ApiError) -> bool:
    """Failures that say X (or the way to it) is unavailable, not that the request is bad."""
    if isinstance(err, TransportError):
        return True
    return isinstance(err, ServerError) and err.status in OUTAGE_STATUSES


def server_wait_s(err: ApiError, now: float) -> float | None:
    """X's own wait: the later of Retry-After and the reset time when the budget is spent
    (Retry-After is whole seconds counted from X's answer: it may end before the reset).

    A reset time next to remaining budget is no retry hint: it is the window's end.
    """
    info = err.rate_limit
    spent = isinstance(err, RateLimited) or info.remaining == 0
    until_reset = (
        max(0.0, info.reset_epoch_s - now) if spent and info.reset_epoch_s is not None else None
    )
    waits = [w for w in (info.retry_after_s, until_reset) if w is not None]
    return max(waits) if waits else None


def decide(
    answer: ApiError | int,
    state: BatchState,
    rules: RetryRules,
    rng: random.Random | None = None,
) -> Action:
    """`answer` is X's error, or the number of events X processed (a 2xx)."""
    if not isinstance(answer, ApiError):
        return Done(answer)
    err = answer
    if isinstance(err, Unauthorized):
        return HoldCredential()
    if isinstance(err, RateLimited):
        wait = server_wait_s(err, state.now)
        if wait is None:
            wait = full_jitter_delay(1, base_s=rules.base_s, cap_s=rules.cap_s, rng=rng)
        return RetryAfter(wait, "rate_limited", counts_attempt=False, block_account=True)
    if isinstance(err, BadRequest):
        return Split() if state.size > 1 else DeadLetter("rejected")
    if isinstance(err, Forbidden | NotFound):
        if err.code in PER_EVENT_NOT_FOUND:
            return DeadLetter("rejected")
        return HoldTarget()
    if not err.retryable:
        return DeadLetter("rejected")
    outage = is_outage(err)
    if state.now - state.first_attempt_at >= rules.retry_for_s:
        return DeadLetter("retries_exhausted")
    counts = not outage or state.x_healthy
    if counts and state.charged + 1 >= rules.max_attempts:
        return DeadLetter("retries_exhausted")
    backoff = full_jitter_delay(state.attempts, base_s=rules.base_s, cap_s=rules.cap_s, rng=rng)
    delay = max(server_wait_s(err, state.now) or 0.0, backoff)
    return RetryAfter(delay, "outage" if outage else "error", counts_attempt=counts)
