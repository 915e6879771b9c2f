"""conversion_event's fast path (mact_fast.py) answers as the full path does: the same
random valid and invalid requests, in the same order, go to a sandbox on its own server
(fast path first) and to one served by aiohttp alone (edge.py, mact.py: the full path);
every answer (status, X's headers, body) and what both remember after (counters,
journal, early requests) must be the same, and the usual requests must take the fast path.
Its pieces are checked against the general code they stand in for."""

from __future__ import annotations

import base64
import dataclasses
import hmac
import random
import string
from collections import Counter
from typing import Any, Final
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import pytest
from yarl import URL

from relay.sandbox import oauth1
from relay.sandbox.config import SandboxConfig
from relay.sandbox.limits import FixedWindowBudget
from relay.sandbox.seeds import APP_EVENT_TAGS, Seed
from relay.sandbox.server import SandboxServer
from relay.xads import oauth
from tests.mact_fixtures import ANDROID_APP, APP_ACCOUNT, EVENT, FORBIDDEN_APP, IOS_APP
from tests.sandbox_fixtures import ANSWER_HEADERS, CREDENTIALS, default_config, oauth_header

NOW: Final = 1_800_000_000  # the clock both sandboxes share, at the start
HOST: Final = "sandbox.test"  # the Host both are called by (the signed URI's)
CASES: Final = 500
USUAL: Final = {
    "app_id": IOS_APP,
    "os_type": "IOS",
    "hashed_device_id": "bench-device-1",
    "conversion_type": "INSTALL",
    "conversion_time": "2026-11-20T10:00:00.123Z",
}
ODD_VALUES: Final = (
    "",
    " ",
    "+",
    "a b",
    "a,b",
    "é",
    "%",
    "INSTALL",
    "install",
    "PURCHASE",  # its tag's windows do not fit (400)
    "SIGN_UP",  # no tag (404)
    "IOS",
    "ANDROID",
    IOS_APP,
    ANDROID_APP,
    FORBIDDEN_APP,
    "999999999",
    "com.unknown.app",
    "not an app",
    "ABCD1234XYZ",  # engaged: attributed
    "lke1GZa3AseB343ZcCQq7svfHzLfuSqyYnE+Rf49MOI=",
    "tap-demo-device-0001",
    "AEBE52E7-03EE-455A-B3C4-E57283966239",  # a raw advertising id
    "x" * 129,
    "2013-04-16T07:00:00.123Z",
    "2017-01-21T02:00:00.000Z",
    "2026-02-30T10:00:00.123Z",
    "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.123Z\n",
    "14",
    "0",
)
# Values right for one parameter, or nearly: drawn as often as any of ODD_VALUES.
NEAR_VALUES: Final = {
    "app_id": (IOS_APP, ANDROID_APP, FORBIDDEN_APP, "com.unknown.app"),
    "os_type": ("IOS", "ANDROID", "ios"),
    "hashed_device_id": ("ABCD1234XYZ", "tap-demo-device-0001", "a+b/c=", "a:b"),
    "conversion_type": ("PURCHASE", "SIGN_UP", "LOGIN", "install"),
    "conversion_time": ("2013-04-16T07:00:00.123Z", "2017-01-21T02:00:00.000Z"),
}
EXTRA_PARAMS: Final = {  # the optional ones, and one X does not take
    "click_window": ("1", "7", "14", "30", "2"),
    "view_through_window": ("0", "1", "7", "30"),
    "limit_ad_tracking": ("true", "false", "yes"),
    "price_micro": ("1000000", "-1"),
    "price_currency": ("USD", "usd"),
    "device_ip_address": ("1.2.3.4", "::1", "1.2.3"),
    "level": ("3",),
    "number_items": ("2", "0"),
    "user_payment_info": ("true",),
    "non_twitter_engagement_type": ("CLICK", "VIEW", "TAP"),
    "non_twitter_engagement_time": ("2026-11-20T09:00:00.123Z",),
    "nope": ("1",),
}


def _query(params: list[tuple[str, str]], rng: random.Random) -> str:
    """The query as some client would write it: quote_plus's escapes, yarl's (`:` and `/`
    as they are), or lower-case escapes."""
    style = rng.choice(["plus", "yarl", "yarl", "lower"])
    if style == "plus":
        return urlencode(params)
    if style == "yarl":
        return str(URL("/").with_query(params).raw_query_string)
    text = urlencode(params)
    return text.replace("%3A", "%3a").replace("%2B", "%2b")


def _request(
    rng: random.Random, now: int, sent: list[tuple[str, str]]
) -> tuple[str, dict[str, str], bytes]:
    """A random conversion_event request: the target, its headers, its body."""
    usual = dict(USUAL)
    if rng.random() < 0.15:  # another conversion type: its own tag, or none
        usual["conversion_type"] = rng.choice(NEAR_VALUES["conversion_type"])
    params = list(usual.items())
    rng.shuffle(params)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        roll = rng.random()
        if roll < 0.45:
            index = rng.randrange(len(params))
            name = params[index][0]
            near = NEAR_VALUES.get(name, ODD_VALUES)
            params[index] = (name, rng.choice(near if rng.random() < 0.5 else ODD_VALUES))
        elif roll < 0.75:
            name = rng.choice(sorted(EXTRA_PARAMS))
            near = EXTRA_PARAMS[name]
            params.append((name, rng.choice(near if rng.random() < 0.7 else ODD_VALUES)))
        elif roll < 0.85:
            params.append(rng.choice(params))  # a name given twice
        else:
            params.pop(rng.randrange(len(params)))
    if rng.random() < 0.5:  # a device of its own: no replayed answer
        params = [
            (k, f"device-{len(sent)}-{rng.randrange(10**6)}" if k == "hashed_device_id" else v)
            for k, v in params
        ]
    query = _query(params, rng)
    target = f"{EVENT}?{query}"
    headers: dict[str, str] = {"Host": HOST}
    body = b""
    form: dict[str, str] | None = None
    roll = rng.random()
    if roll < 0.1:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        if rng.random() < 0.5:
            form = {"extra": "1"}
            body = b"extra=1"
    elif roll < 0.2:
        headers["Content-Type"] = rng.choice(["application/json", "text/plain; charset=utf-8"])
        body = rng.choice([b"", b"{}"])
    headers.update(_authorization(rng, now, target, form, sent))
    return target, headers, body


def _authorization(
    rng: random.Random,
    now: int,
    target: str,
    form: dict[str, str] | None,
    sent: list[tuple[str, str]],
) -> dict[str, str]:
    """An OAuth header for the target: usually right, else one of the ways it goes wrong."""
    nonce, timestamp = f"n{rng.randrange(10**12)}", now + rng.choice([0, 0, 0, -10, 200])
    roll = rng.random()
    if roll < 0.04 and sent:
        nonce, stamp = rng.choice(sent)  # a replay, or a nonce again with another time
        timestamp = int(stamp) if rng.random() < 0.7 else timestamp
    elif roll < 0.07:
        timestamp = now + rng.choice([-301, 400, 10**6])  # stale
    sent.append((nonce, str(timestamp)))
    keys = dict(
        consumer_key=CREDENTIALS["consumer_key"],
        consumer_secret=CREDENTIALS["consumer_secret"],
        token=CREDENTIALS["access_token"],
        token_secret=CREDENTIALS["access_token_secret"],
    )
    if roll < 0.1:
        keys[rng.choice(list(keys))] = "someone-else"
    # The decoded query, as the signer reads it: its escapes decoded once.
    header = oauth.authorization_header(
        "POST",
        f"http://{HOST}{target}",
        form=form,
        nonce=nonce,
        timestamp=timestamp,
        **keys,
    )
    roll = rng.random()
    if roll < 0.05:
        header = header.replace('oauth_signature="', 'oauth_signature="A')
    elif roll < 0.08:
        header = header.replace(", ", ",")  # still valid, another shape
    elif roll < 0.11:
        header = header.replace("OAuth ", 'OAuth realm="x", ')
    elif roll < 0.13:
        header = header.replace('oauth_version="1.0"', 'oauth_version="1.1"')
    elif roll < 0.15:
        header = header.replace("HMAC-SHA1", "PLAINTEXT")
    elif roll < 0.17:
        header = header.replace(", oauth_nonce", ', oauth_callback="oob", oauth_nonce')
    elif roll < 0.19:
        header = header.replace("oauth_nonce", "oauth_nonce_x")
    elif roll < 0.2:
        return {}
    return {"Authorization": header}


async def _answer(
    session: aiohttp.ClientSession, url: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str | None], bytes]:
    async with session.post(
        URL(url + target, encoded=True), headers=headers, data=body or None
    ) as resp:
        return resp.status, {h: resp.headers.get(h) for h in ANSWER_HEADERS}, await resp.read()


async def _control(
    session: aiohttp.ClientSession, url: str, method: str, name: str, **kw: Any
) -> bytes:
    async with session.request(method, f"{url}/_sandbox/{name}", **kw) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


def _config() -> SandboxConfig:
    """The defaults with small budgets (some requests find them spent; the token's window
    shorter than the account's, so that some arrive before an announced reset), no iOS
    SIGN_UP tag, and an iOS PURCHASE tag whose windows do not fit."""
    config = default_config(
        account_limit=30, account_window_s=60, token_limit=36, token_window_s=30
    )
    seeds = []
    for seed in config.seeds:
        item = seed.item
        if seed.kind == APP_EVENT_TAGS and item["app_store_identifier"] == IOS_APP:
            if item["conversion_type"] == "SIGN_UP":
                continue
            if item["conversion_type"] == "PURCHASE":
                windows = {
                    "post_engagement_attribution_window": 1,
                    "post_view_attribution_window": 7,
                }
                item = {**item, **windows}
        seeds.append(Seed(seed.kind, seed.account_id, item))
    return dataclasses.replace(config, seeds=tuple(seeds))


ACCESS_CHANGES: Final = (
    {"deny": {"apps": {IOS_APP: 404}}},
    {"deny": {"accounts": {APP_ACCOUNT: 403}}},
    {"revoked_tokens": [CREDENTIALS["access_token"]]},
)


async def test_fast_path_answers_as_the_full_path() -> None:
    rng = random.Random(20261205)
    config = _config()
    now = [float(NOW)]  # one clock for both, moved on between requests
    fast = SandboxServer(config, clock=lambda: now[0], own_server=True)
    full = SandboxServer(config, clock=lambda: now[0], own_server=False)
    sent: list[tuple[str, str]] = []
    async with fast, full, aiohttp.ClientSession() as session:
        statuses: Counter[int] = Counter()
        for case in range(CASES):
            now[0] += rng.choice([0.0, 0.0, 0.2, 1.0, 3.0])
            if rng.random() < 0.02:  # access withdrawn for a few requests, then given back
                change = rng.choice(ACCESS_CHANGES)
                for server in (fast, full):
                    await _control(session, server.url, "POST", "access", json=change)
            elif rng.random() < 0.1:
                for server in (fast, full):
                    await _control(session, server.url, "DELETE", "access")
            target, headers, body = _request(rng, int(now[0]), sent)
            expected = await _answer(session, full.url, target, headers, body)
            got = await _answer(session, fast.url, target, headers, body)
            assert got == expected, (case, target, headers)
            statuses[expected[0]] += 1
        early = orjson.loads(await _control(session, full.url, "GET", "early-requests"))
        for name in ("stats", "journal?kind=app", "early-requests"):
            assert await _control(session, fast.url, "GET", name) == await _control(
                session, full.url, "GET", name
            ), name
        taken = fast.fast_answers
        assert full.fast_answers == 0
    assert {200, 400, 401, 403, 404, 429} <= statuses.keys(), statuses
    assert early["total"] > 0, early
    # Many 200s from the fast path; the full path answered the others (unusual queries,
    # headers, bodies) alike.
    assert CASES // 10 < taken < statuses[200] - CASES // 20


async def test_usual_requests_take_the_fast_path() -> None:
    """What the relay and `relay bench sandbox` send: aiohttp's client, base64 device ids."""
    server = SandboxServer(default_config(), clock=lambda: float(NOW), own_server=True)
    async with server, aiohttp.ClientSession() as session:
        for number, device in enumerate(
            ["bench-device-1", "lke1GZa3AseB343ZcCQq7svfHzLfuSqyYnE+Rf49MOI="]
        ):
            params = {**USUAL, "hashed_device_id": device}
            if "+" in device:
                params.update(app_id=ANDROID_APP, os_type="ANDROID")
            url = f"{server.url}{EVENT}?{urlencode(params)}"
            signed = oauth_header("POST", url, timestamp=NOW)
            async with session.post(url, headers={"Authorization": signed}) as resp:
                assert resp.status == 200, await resp.text()
            assert server.fast_answers == number + 1


def test_hmac_sha1_key_is_rfc_2104() -> None:
    rng = random.Random(20261206)
    for size in (0, 1, 20, 63, 64, 65, 200):
        key = rng.randbytes(size)
        text = "".join(rng.choice(string.printable + "é") for _ in range(rng.randrange(300)))
        expected = base64.b64encode(hmac.digest(key, text.encode(), "sha1")).decode()
        assert oauth1.hmac_sha1(key, text) == expected


HEADER_PIECES: Final = (
    "oauth_nonce",
    "oauth_token",
    "oauth_version",
    "realm",
    "oauth_x",
    "=",
    '"',
    '", ',
    ",",
    " ",
    "%2B",
    "%41",
    "%",
    "abc",
    "é",
)


def test_usual_header_parse_is_the_general_one() -> None:
    rng = random.Random(20261207)
    usual_taken = 0
    for _ in range(3000):
        if rng.random() < 0.5:
            names = rng.sample(sorted(oauth1._KNOWN_NAMES), rng.randint(1, 7))
            values = ["".join(rng.choice(HEADER_PIECES[9:]) for _ in range(3)) for _ in names]
            rest = ", ".join(f'{n}="{v}"' for n, v in zip(names, values, strict=True))
        else:
            rest = "".join(rng.choice(HEADER_PIECES) for _ in range(rng.randint(1, 12)))
        usual = oauth1._usual_header(rest)
        if usual is not None:
            usual_taken += 1
            assert usual == oauth1._plain_header(rest), rest
    assert usual_taken > 300


def test_base_string_of_pairs_is_the_general_one() -> None:
    rng = random.Random(20261208)
    names = ["oauth_nonce", "oauth_token", "app_id", "conversion_time", "os_type"]
    for _ in range(1000):
        protocol = [(n, "".join(rng.choice("aZ09-._~") for _ in range(5))) for n in names[:2]]
        query = "&".join(f"{n}={quote(rng.choice(ODD_VALUES), safe='')}" for n in names[2:])
        uri = oauth1.base_uri("http", HOST, EVENT)
        expected = oauth1.base_string("POST", uri, protocol, oauth1.encoded_form(query))
        pairs = [f"{k}={v}" for k, v in protocol] + query.split("&")
        got = oauth1.base_string_of_pairs(
            "POST", oauth1.encoded_base_uri("http", HOST, EVENT), pairs
        )
        assert got == expected


@pytest.mark.parametrize("cost", [1, 3])
def test_budget_take_and_header_values_are_spend_and_peek(cost: int) -> None:
    rng = random.Random(20261209 + cost)
    taking, spending = FixedWindowBudget(10, 60), FixedWindowBudget(10, 60)
    now = 1_000.0
    for _ in range(500):
        now += rng.choice([0.0, 0.5, 7.0, 61.0])
        key = rng.choice("ab")
        assert taking.take(key, cost, now) == spending.spend(key, cost, now)[0]
        state = spending.peek(key, now)
        expected = (str(state.limit), str(state.remaining), str(state.reset_epoch_s))
        assert taking.header_values(key, now) == expected
