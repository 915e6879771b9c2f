"""Access and limits like X: per-account and per-token budgets, OAuth freshness and replay."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

import pytest

from relay.sandbox.config import load_sandbox_config
from relay.sandbox.limits import FixedWindowBudget
from relay.sandbox.replay import ReplayGuard
from relay.xads.errors import RateLimited
from tests.mact_fixtures import ATTRIBUTION, EVENT, EXAMPLE_PARAMS, call, relay_client
from tests.sandbox_fixtures import (
    ACCOUNT,
    FORBIDDEN_PIXEL,
    OTHER_PIXEL,
    PIXEL,
    Reply,
    SandboxClient,
    conversion,
    default_config,
    oauth_header,
    running_sandbox,
)

START = 1_800_000_000.0  # a multiple of 900: a window starts here
WINDOW_END = int(START) + 900
X_429 = {"errors": [{"code": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded"}]}


class FakeClock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


def budget(reply: Reply, prefix: str = "x-account-rate-limit-") -> tuple[int, int, int]:
    """(limit, remaining, reset) of one budget's headers."""
    headers = reply.headers
    return (
        int(headers[prefix + "limit"]),
        int(headers[prefix + "remaining"]),
        int(headers[prefix + "reset"]),
    )


def token_budget(reply: Reply) -> tuple[int, int, int]:
    return budget(reply, "x-rate-limit-")


def has_budget_headers(headers: Mapping[str, str]) -> bool:
    return any(
        name.lower().startswith(("x-account-rate-limit", "x-rate-limit")) for name in headers
    )


async def post(sandbox: SandboxClient, count: int, pixel_id: str = PIXEL) -> Reply:
    event = "o87ne" if pixel_id == PIXEL else "p9x01"
    body = {
        "conversions": [conversion(event_id=event, conversion_id=f"c{i}") for i in range(count)]
    }
    return await sandbox.post_conversions(body, pixel_id)


# -- budgets ----------------------------------------------------------------------------------


async def test_budget_headers_are_present_and_decreasing() -> None:
    clock = FakeClock()
    async with running_sandbox(default_config(account_limit=1000), clock=clock) as sandbox:
        first = await post(sandbox, 1)
        assert first.status == 200
        assert budget(first) == (1000, 999, WINDOW_END)
        assert token_budget(first) == (100_000, 99_999, WINDOW_END)
        second = await post(sandbox, 2)
        assert budget(second) == (1000, 997, WINDOW_END)
        assert token_budget(second) == (100_000, 99_998, WINDOW_END)
        # Another account has a budget of its own; the token's is shared.
        other = await post(sandbox, 1, OTHER_PIXEL)
        assert budget(other) == (1000, 999, WINDOW_END)
        assert token_budget(other) == (100_000, 99_997, WINDOW_END)
        # An app conversion costs its account 1; an attribution query costs none.
        event = await call(sandbox, EVENT, EXAMPLE_PARAMS)
        assert event.status == 200
        assert budget(event) == (1000, 999, WINDOW_END)
        query = await call(sandbox, ATTRIBUTION, EXAMPLE_PARAMS)
        assert budget(query) == (1000, 999, WINDOW_END)
        assert token_budget(query) == (100_000, 99_995, WINDOW_END)
        # Invalid requests are answered with the headers too, and cost no events.
        invalid = await sandbox.post_conversions({"conversions": []})
        assert invalid.status == 400
        assert budget(invalid) == (1000, 997, WINDOW_END)


async def test_a_web_request_of_500_costs_500() -> None:
    clock = FakeClock()
    async with running_sandbox(default_config(account_limit=1000), clock=clock) as sandbox:
        assert budget(await post(sandbox, 500)) == (1000, 500, WINDOW_END)
        assert budget(await post(sandbox, 500)) == (1000, 0, WINDOW_END)
        refused = await post(sandbox, 1)
        assert refused.status == 429
        assert refused.body == {**X_429, "request": {"params": {"account_id": ACCOUNT}}}
        assert budget(refused) == (1000, 0, WINDOW_END)
        assert (await sandbox.journal())["total"] == 1000, "nothing recorded for the 429"
        stats = await sandbox.stats()
        assert stats["conversions_accepted"] == 1000
        assert stats["rejected"] == {"TOO_MANY_REQUESTS": 1}


async def test_a_request_that_does_not_fit_is_refused_whole() -> None:
    async with running_sandbox(default_config(account_limit=10), clock=FakeClock()) as sandbox:
        assert (await post(sandbox, 8)).status == 200
        refused = await post(sandbox, 3)
        assert refused.status == 429
        assert budget(refused)[1] == 2
        assert (await post(sandbox, 2)).status == 200
        assert (await sandbox.journal())["total"] == 10


async def test_a_spent_budget_comes_back_with_the_next_window() -> None:
    clock = FakeClock(START + 100)
    async with running_sandbox(default_config(account_limit=3), clock=clock) as sandbox:
        for remaining in (2, 1, 0):
            reply = await call(sandbox, EVENT, EXAMPLE_PARAMS)
            assert (reply.status, budget(reply)) == (200, (3, remaining, WINDOW_END))
        refused = await call(sandbox, EVENT, EXAMPLE_PARAMS)
        assert refused.status == 429
        assert refused.body["errors"] == X_429["errors"]
        assert budget(refused) == (3, 0, WINDOW_END)
        assert (await sandbox.journal(kind="app"))["total"] == 3

        clock.now = WINDOW_END - 0.001
        assert (await call(sandbox, EVENT, EXAMPLE_PARAMS)).status == 429
        clock.now = WINDOW_END  # the reset time the headers promised
        again = await call(sandbox, EVENT, EXAMPLE_PARAMS)
        assert (again.status, budget(again)) == (200, (3, 2, WINDOW_END + 900))
        assert (await sandbox.journal(kind="app"))["total"] == 4


async def test_the_relay_client_sees_the_429_and_its_reset() -> None:
    async with running_sandbox(default_config(account_limit=1)) as sandbox:
        async with relay_client(sandbox) as client:
            await client.post_web_conversions(PIXEL, [conversion()])
            with pytest.raises(RateLimited) as caught:
                await client.post_web_conversions(PIXEL, [conversion(conversion_id="2")])
        limits = caught.value.rate_limit
        assert (limits.limit, limits.remaining) == (1, 0)
        assert limits.reset_epoch_s is not None
        assert limits.reset_epoch_s % 900 == 0
        assert caught.value.code == "TOO_MANY_REQUESTS"


async def test_the_token_budget_counts_requests() -> None:
    clock = FakeClock()
    async with running_sandbox(default_config(token_limit=3), clock=clock) as sandbox:
        for remaining in (2, 1):
            reply = await post(sandbox, 5)
            assert (reply.status, token_budget(reply)) == (200, (3, remaining, WINDOW_END))
        # A request that fails authentication spends nothing of the token's budget.
        url = sandbox.conversions_url()
        forged = oauth_header("POST", url, consumer_secret="wrong", timestamp=int(clock()))
        refused = await sandbox.post_conversions(
            {"conversions": [conversion()]}, headers={"Authorization": forged}
        )
        assert refused.status == 401
        assert not has_budget_headers(refused.headers)
        last = await call(sandbox, ATTRIBUTION, EXAMPLE_PARAMS)
        assert (last.status, token_budget(last)) == (200, (3, 0, WINDOW_END))
        spent = await post(sandbox, 1)
        assert spent.status == 429
        assert spent.body == {**X_429, "request": {"params": {}}}
        assert token_budget(spent) == (3, 0, WINDOW_END)
        assert (await sandbox.journal())["total"] == 10
        # The pixel's own token is not a user token: no token budget applies to it.
        pixel = await sandbox.post_conversions(
            {"conversions": [conversion()]}, headers={"X-Pixel-Token": "demo-pixel-token-o8z6j"}
        )
        assert pixel.status == 200
        assert "x-rate-limit-remaining" not in pixel.headers
        assert budget(pixel)[1] == 60_000 - 11
        clock.now = WINDOW_END
        assert (await post(sandbox, 1)).status == 200


async def test_no_budget_headers_for_callers_without_the_right() -> None:
    async with running_sandbox() as sandbox:
        unauthenticated = await sandbox.post_conversions(
            {"conversions": [conversion()]}, headers={"Authorization": 'OAuth a="b"'}
        )
        assert unauthenticated.status == 401
        assert not has_budget_headers(unauthenticated.headers)
        forbidden = await sandbox.post_conversions(
            {"conversions": [conversion(event_id="s1w01")]}, FORBIDDEN_PIXEL
        )
        assert forbidden.status == 403
        assert "x-account-rate-limit-remaining" not in forbidden.headers
        unknown = await sandbox.post_conversions({"conversions": [conversion()]}, "zzzzz")
        assert unknown.status == 404
        assert "x-account-rate-limit-remaining" not in unknown.headers
        control = await sandbox.control("GET", "stats")
        assert not has_budget_headers(control.headers)


async def test_reset_restores_the_budgets() -> None:
    async with running_sandbox(default_config(account_limit=1), clock=FakeClock()) as sandbox:
        assert (await post(sandbox, 1)).status == 200
        assert (await post(sandbox, 1)).status == 429
        assert (await sandbox.control("POST", "reset")).status == 200
        assert budget(await post(sandbox, 1)) == (1, 0, WINDOW_END)


def test_the_budgets_come_from_the_environment() -> None:
    config = load_sandbox_config(
        None,
        {
            "RELAY_ACCOUNT_LIMIT": "500",
            "RELAY_ACCOUNT_WINDOW_S": "60",
            "RELAY_SANDBOX_TOKEN_LIMIT": "7",
            "RELAY_SANDBOX_TOKEN_WINDOW_S": "30",
        },
    )
    assert (config.account_limit, config.account_window_s) == (500, 60)
    assert (config.token_limit, config.token_window_s) == (7, 30)
    defaults = load_sandbox_config(None, {})
    assert (defaults.token_limit, defaults.token_window_s) == (100_000, 900)


def test_fixed_windows() -> None:
    budget_ = FixedWindowBudget(10, 60)
    assert budget_.spend("a", 4, 125.0) == (True, budget_.peek("a", 125.0))
    assert budget_.peek("a", 179.9).remaining == 6
    assert budget_.peek("a", 179.9).reset_epoch_s == 180
    assert budget_.spend("a", 7, 130.0)[0] is False
    budget_.refund("a", 4, 130.0)
    assert budget_.peek("a", 130.0).remaining == 10
    budget_.spend("a", 10, 170.0)
    budget_.refund("a", 10, 185.0)  # the next window: nothing to give back
    assert budget_.peek("a", 185.0).remaining == 10
    assert budget_.peek("b", 185.0).remaining == 10
    with pytest.raises(ValueError):
        FixedWindowBudget(0, 60)


# -- OAuth freshness and replay ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset_s", "status"), [(-300, 200), (-301, 401), (300, 200), (301, 401), (0, 200)]
)
async def test_oauth_timestamps_must_be_fresh(offset_s: int, status: int) -> None:
    clock = FakeClock()
    async with running_sandbox(clock=clock) as sandbox:
        url = sandbox.conversions_url()
        header = oauth_header("POST", url, timestamp=int(START) + offset_s)
        reply = await sandbox.post_conversions(
            {"conversions": [conversion()]}, headers={"Authorization": header}
        )
        assert reply.status == status, reply.text


async def test_a_timestamp_must_be_a_number() -> None:
    async with running_sandbox() as sandbox:
        url = sandbox.conversions_url()
        header = oauth_header("POST", url).replace('oauth_timestamp="', 'oauth_timestamp="x')
        reply = await sandbox.post_conversions(
            {"conversions": [conversion()]}, headers={"Authorization": header}
        )
        assert reply.status == 401


async def test_a_replayed_request_is_refused() -> None:
    async with running_sandbox(clock=FakeClock()) as sandbox:
        url = sandbox.conversions_url()

        def signed(nonce: str, timestamp: int) -> dict[str, str]:
            header = oauth_header("POST", url, nonce=nonce, timestamp=timestamp)
            return {"Authorization": header}

        body = {"conversions": [conversion()]}
        first = signed("abc", int(START))
        assert (await sandbox.post_conversions(body, headers=first)).status == 200
        replayed = await sandbox.post_conversions(body, headers=first)
        assert replayed.status == 401
        assert replayed.body["errors"][0]["code"] == "UNAUTHORIZED_ACCESS"
        assert (await sandbox.journal())["total"] == 1
        # The same nonce at another second is another request (RFC 5849 3.3).
        later = signed("abc", int(START) + 1)
        assert (await sandbox.post_conversions(body, headers=later)).status == 200


def test_nonces_are_forgotten_once_their_timestamp_is_stale() -> None:
    clock = FakeClock()
    guard = ReplayGuard(clock, window_s=300, max_keys=1000)
    assert guard.admit("k", "t", "n1", str(int(START)))
    assert not guard.admit("k", "t", "n1", str(int(START)))
    assert guard.admit("k", "t2", "n1", str(int(START))), "another token, another key"
    assert guard.admit("k", "t", "n2", str(int(START) - 300))
    assert len(guard) == 3
    clock.now = START + 301
    assert guard.admit("k", "t", "n3", str(int(START) + 301))
    assert len(guard) == 1, "the stale ones are gone"
    assert not guard.admit("k", "t", "n1", str(int(START))), "stale: refused by its timestamp"


def test_the_nonce_memory_is_bounded() -> None:
    guard = ReplayGuard(FakeClock(), window_s=300, max_keys=2)
    for nonce in ("a", "b", "c"):
        assert guard.admit("k", "t", nonce, str(int(START)))
    assert len(guard) == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAY_ACCOUNT_LIMIT", "inf"),
        ("RELAY_ACCOUNT_LIMIT", "nan"),
        ("RELAY_ACCOUNT_LIMIT", "0"),
        ("RELAY_SANDBOX_TOKEN_WINDOW_S", "-inf"),
    ],
)
def test_sandbox_refuses_a_budget_that_is_not_positive_and_finite(name: str, value: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "relay", "sandbox", "--port", "0"],
        env={**base, name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert name in lines[0] and "positive finite" in lines[0]
