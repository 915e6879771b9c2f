"""The web conversions endpoint's fast path (validation_fast.py) answers as the full checks
(validation.py) do: the same random valid and invalid requests, in the same order, go to
a sandbox with the fast path (on its own server) and to one without it (served by aiohttp
alone: the reference); every answer (status, X's headers, body) and what both remember
after (counters, journal, dedup) must be the same, and the requests the relay sends must
take the fast path. The checks the fast path makes once per request (IP addresses, times,
amounts, joined) are compared with validation.py's, value by value."""

from __future__ import annotations

import copy
import ipaddress
import random
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import orjson

from relay.sandbox import validation, validation_fast
from relay.sandbox.server import SandboxServer
from tests.sandbox_fixtures import (
    ANSWER_HEADERS,
    EMAIL_HASH,
    FORBIDDEN_PIXEL,
    OTHER_PIXEL,
    PHONE_HASH,
    PIXEL,
    default_config,
    oauth_header,
)

NOW: Final = 1_800_000_000.0  # the clock both sandboxes share, at the start
CASES: Final = 1000
PIXEL_TOKENS: Final = {
    PIXEL: "demo-pixel-token-o8z6j",
    OTHER_PIXEL: "demo-pixel-token-p1a2b",
    FORBIDDEN_PIXEL: "demo-pixel-token-s7g8h",
}
USER_AGENT: Final = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
GOOD_TIMES: Final = (
    "2026-11-20T10:00:00.123Z",
    "2026-11-20T23:59:59.999Z",
    "2024-02-29T00:00:00.000Z",
    "2026-12-31T00:00:00.000Z",
)
# Per field, values right or nearly right for it (valid ones the fast path leaves to the
# full checks among them: a float amount, an IPv4 tail, spaces around an IP address).
NEAR: Final[dict[str, tuple[Any, ...]]] = {
    "conversion_time": (
        "2026-02-29T10:00:00.000Z",
        "2026-02-30T10:00:00.123Z",
        "2026-11-20T24:00:00.000Z",
        "2026-11-20T10:60:00.000Z",
        "2026-11-20T10:00:60.000Z",
        "0000-01-01T00:00:00.000Z",
        "2026-13-01T00:00:00.000Z",
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00.123Z\n",
        "2026-11-20 10:00:00.123Z",
        "2026-11-20T10:00:00.123+00:00",
        "٢٠٢٦-11-20T10:00:00.123Z",
        "2026-11-20T10:00:00.123Z,2026-11-20T10:00:00.123Z",
    ),
    "event_id": ("o87nf", f"tw-{PIXEL}-o87ng", f"tw-{PIXEL}-", "p9x01", "O87NE", "nope"),
    "conversion_id": ("", " ", "c-1", "c-2", 7),
    "value": (
        "0",
        "7",
        3,
        0,
        1.5,
        0.0,
        -1,
        "-1",
        "1.",
        ".5",
        "1e3",
        "1,5",
        "٢٠",
        2**53,
        2**53 + 1,
        2**63,
    ),
    "price_currency": ("EUR", "JPY", "usd", "US", "USDX", ""),
    "number_items": (1, 5, 0, -1, 2**31 - 1, 2**31, 1.0, True, "2"),
    "description": ("a book", "", 5),
    "contents": (
        [],
        [{"content_id": "sku-1", "content_price": "5.00", "num_items": 2}],
        [{"content_id": "sku-1", "content_price": 5.5}],
        [{"content_price": "5,00"}],
        [{"content_price": "-5"}],
        [{"num_items": 0}],
        [{"content_name": 3}],
        [{"sku": "x"}],
        ["x"],
        "x",
    ),
}
HASHES: Final = (
    EMAIL_HASH.upper(),
    EMAIL_HASH[:-1],
    EMAIL_HASH + "0",
    EMAIL_HASH[:-1] + " ",
    " " + EMAIL_HASH[1:],
    EMAIL_HASH[:-1] + "g",
    EMAIL_HASH[:-1] + "٣",
    EMAIL_HASH[:32] + "," + EMAIL_HASH[33:],
    "",
)
IP_ADDRESSES: Final = (
    "8.25.197.25",
    "0.0.0.0",
    "255.255.255.255",
    "2001:db8:1f::a",
    "2001:DB8::A",
    "::",
    "::1",
    "1::",
    "fe80::1",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::1:2:3:4:5:6:7",
    "0001:0002::0003",
    "::ffff:1.2.3.4",
    "64:ff9b::192.0.2.33",
    "fe80::1%eth0",
    " 198.51.100.7",
    "198.51.100.7 ",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.4,5.6.7.8",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4::5:6:7:8",
    "1::2::3",
    ":1::",
    "1:::2",
    "12345::",
    ":",
    "١.٢.٣.٤",
    "",
    " ",
)
USER_AGENTS: Final = ("curl/8.5", "", " ", "\t")
WRONG_TYPES: Final[tuple[Any, ...]] = (None, 5, -1, 1.5, True, [], {}, [{}], "x" * 100)


def _identifiers(rng: random.Random) -> list[dict[str, Any]]:
    """The relay's identifiers: hashed email and phone, IP address and user agent together;
    sometimes fewer, a twclid, another order."""
    ip = rng.choice(["198.51.100.7", "198.51.3.254", "2001:db8:7a::3"])
    identifiers: list[dict[str, Any]] = [
        {"hashed_email": EMAIL_HASH},
        {"hashed_phone_number": PHONE_HASH},
        {"ip_address": ip, "user_agent": USER_AGENT},
    ]
    roll = rng.random()
    if roll < 0.2:
        identifiers = [{"hashed_email": EMAIL_HASH}]
    elif roll < 0.3:
        identifiers = [{"twclid": "23opevjt88psuo13lu8d020qkn"}, *identifiers[2:]]
    elif roll < 0.4:
        identifiers = [{"ip_address": ip}, {"user_agent": USER_AGENT}, identifiers[1]]
    elif roll < 0.5:
        identifiers = identifiers[2:]  # IP address and user agent: enough together
    if rng.random() < 0.2:
        rng.shuffle(identifiers)
    return identifiers


def _conversion(rng: random.Random, conversion_id: str) -> dict[str, Any]:
    conversion: dict[str, Any] = {
        "conversion_time": rng.choice(GOOD_TIMES),
        "event_id": rng.choice(["o87ne", "o87nf", f"tw-{PIXEL}-o87ng"]),
        "identifiers": _identifiers(rng),
        "conversion_id": conversion_id,
        "value": f"{rng.randint(100, 50_000) / 100:.2f}",
        "price_currency": rng.choice(["USD", "EUR", "GBP", "JPY"]),
        "number_items": rng.randint(1, 5),
    }
    if rng.random() < 0.1:
        conversion["description"] = "a book"
    if rng.random() < 0.1:
        conversion["contents"] = [{"content_id": "sku-1", "content_price": "5.00"}]
    if rng.random() < 0.1:
        del conversion[rng.choice(["conversion_id", "value", "price_currency", "number_items"])]
    return conversion


def _broken_identifiers(rng: random.Random, identifiers: list[dict[str, Any]]) -> Any:
    roll = rng.random()
    if roll < 0.4:  # one value changed
        item = rng.choice(identifiers)
        key = rng.choice(sorted(item))
        if key in ("hashed_email", "hashed_phone_number"):
            choices: tuple[Any, ...] = HASHES
        elif key == "ip_address":
            choices = IP_ADDRESSES
        elif key == "user_agent":
            choices = USER_AGENTS
        else:
            choices = ("", " ", "abc")
        item[key] = rng.choice(choices if rng.random() < 0.8 else WRONG_TYPES)
        return identifiers
    if roll < 0.6:  # an IP address and a user agent only (enough together), one odd
        ip_address, user_agent = rng.choice(IP_ADDRESSES), rng.choice(USER_AGENTS)
        if rng.random() < 0.5:
            return [{"ip_address": ip_address, "user_agent": USER_AGENT}]
        return [{"ip_address": "198.51.100.7", "user_agent": user_agent}]
    if roll < 0.7:  # two in one object
        extra = rng.choice([{"twclid": "a"}, {"user_agent": "b"}, {"hashed_email": EMAIL_HASH}])
        identifiers[0] = {**identifiers[0], **extra}
        return identifiers
    if roll < 0.8:
        alone = [{"ip_address": "198.51.100.7"}, {"user_agent": USER_AGENT}, {"twclid": " "}]
        return [rng.choice(alone)]  # not enough
    if roll < 0.9:
        return [*identifiers, rng.choice([{"email": EMAIL_HASH}, {}, *WRONG_TYPES])]
    return rng.choice(WRONG_TYPES)


def _broken(rng: random.Random, conversion: dict[str, Any]) -> Any:
    """The conversion with one thing wrong (or valid in an unusual way)."""
    if type(conversion) is not dict:
        return conversion  # broken already
    conversion = copy.deepcopy(conversion)
    roll = rng.random()
    if roll < 0.35:
        identifiers = conversion.get("identifiers")
        if type(identifiers) is not list or not all(type(i) is dict for i in identifiers):
            identifiers = _identifiers(rng)  # broken already: break a sound one
        conversion["identifiers"] = _broken_identifiers(rng, identifiers)
    elif roll < 0.8:
        name = rng.choice(sorted(NEAR))
        conversion[name] = rng.choice(NEAR[name] if rng.random() < 0.7 else WRONG_TYPES)
    elif roll < 0.9:
        conversion.pop(rng.choice(["conversion_time", "event_id", "identifiers"]), None)
    elif roll < 0.95:
        conversion["unknown_field"] = 1
    else:
        return rng.choice(WRONG_TYPES)
    return conversion


class Requests:
    """Random web conversions requests, and the ids to send again (X's dedup)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.ids: list[str] = []
        self.bodies: list[bytes] = []

    def conversion_id(self) -> str:
        if self.ids and self.rng.random() < 0.05:
            return self.rng.choice(self.ids)  # seen before: a duplicate
        self.ids.append(f"order-{len(self.ids)}")
        return self.ids[-1]

    def body(self) -> bytes:
        rng = self.rng
        if self.bodies and rng.random() < 0.05:
            return rng.choice(self.bodies)  # a request sent again
        count = rng.choice([1, 1, 2, 3, 5, 40, 500 if rng.random() < 0.1 else 501])
        conversions: list[Any] = [_conversion(rng, self.conversion_id()) for _ in range(count)]
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            at = rng.randrange(count)
            conversions[at] = _broken(rng, conversions[at])
        if rng.random() < 0.05:
            conversions.append(copy.deepcopy(conversions[0]))  # a conversion_id twice
        document: Any = {"conversions": conversions}
        roll = rng.random()
        if roll < 0.03:
            document = rng.choice([[], None, {"conversions": []}, {"conversions": None}, {}])
        elif roll < 0.05:
            document["extra"] = 1
        raw = orjson.dumps(document)
        roll = rng.random()
        if roll < 0.02:
            raw = raw[: rng.randrange(len(raw))]
        elif roll < 0.04:  # a key given twice: the last one counts, in both parsers
            raw = raw.replace(b'"event_id":', b'"event_id":null,"event_id":', 1)
        elif roll < 0.06:
            raw = raw.replace(b'"ip_address":', b'"ip_address":"x","ip_address":', 1)
        self.bodies.append(raw)
        return raw

    def headers(self, pixel: str, now: float) -> Callable[[str], dict[str, str]]:
        """The headers for a request to `pixel` at a URL (OAuth signs the URL)."""
        rng = self.rng
        roll = rng.random()
        token = PIXEL_TOKENS.get(pixel, "no-such-token") if roll < 0.85 else None
        if roll < 0.9 and token is None:
            token = PIXEL_TOKENS[OTHER_PIXEL]  # another pixel's
        nonce = f"n{rng.randrange(10**12)}"

        def headers(url: str) -> dict[str, str]:
            if token is not None:
                return {"Content-Type": "application/json", "X-Pixel-Token": token}
            signed = oauth_header("POST", url, nonce=nonce, timestamp=int(now))
            return {"Content-Type": "application/json", "Authorization": signed}

        return headers


async def _answer(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str | None], Any]:
    async with session.post(url, headers=headers, data=body) as resp:
        return resp.status, {h: resp.headers.get(h) for h in ANSWER_HEADERS}, await resp.read()


async def _control(session: aiohttp.ClientSession, url: str, name: str) -> Any:
    async with session.get(f"{url}/_sandbox/{name}") as resp:
        assert resp.status == 200, await resp.text()
        return orjson.loads(await resp.read())


def _without_debug_id(answer: tuple[int, dict[str, str | None], bytes], ids: list[str]) -> Any:
    """The answer with its debug_id (random, one per accepted request) as its number."""
    status, headers, raw = answer
    body = orjson.loads(raw)
    if status == 200:
        ids.append(body["data"]["debug_id"])
        body["data"]["debug_id"] = len(ids) - 1
    return status, headers, body


def _journal(entries: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    number = {debug_id: n for n, debug_id in enumerate(ids)}
    return [{**e, "debug_id": number[e["debug_id"]]} for e in entries]


async def test_fast_path_answers_as_the_full_checks() -> None:
    rng = random.Random(20261210)
    # The account's budget small enough that some requests find it spent (429: nothing kept).
    config = default_config(account_limit=600, account_window_s=60)
    now = [NOW]
    fast = SandboxServer(config, clock=lambda: now[0], own_server=True)
    full = SandboxServer(config, clock=lambda: now[0], own_server=False, web_fast_path=False)
    requests = Requests(rng)
    fast_ids: list[str] = []
    full_ids: list[str] = []
    statuses: Counter[int] = Counter()
    async with fast, full, aiohttp.ClientSession() as session:
        for case in range(CASES):
            now[0] += rng.choice([0.0, 0.5, 1.0, 2.0])
            roll = rng.random()
            pixel = PIXEL if roll < 0.9 else rng.choice([OTHER_PIXEL, FORBIDDEN_PIXEL, "zzzzz"])
            path = f"/12/measurement/conversions/{pixel}"
            body = requests.body()
            headers = requests.headers(pixel, now[0])
            expected = await _answer(session, full.url + path, headers(full.url + path), body)
            got = await _answer(session, fast.url + path, headers(fast.url + path), body)
            assert _without_debug_id(got, fast_ids) == _without_debug_id(expected, full_ids), (
                case,
                body[:2000],
            )
            statuses[expected[0]] += 1
        assert await _control(session, fast.url, "stats") == await _control(
            session, full.url, "stats"
        )
        fast_journal = await _control(session, fast.url, "journal")
        full_journal = await _control(session, full.url, "journal")
        assert fast_journal["total"] == full_journal["total"] > 0
        assert _journal(fast_journal["conversions"], fast_ids) == _journal(
            full_journal["conversions"], full_ids
        )
        assert any(e["duplicate"] for e in full_journal["conversions"])
        taken = fast.web_fast_answers
        assert full.web_fast_answers == 0
    assert {200, 400, 401, 404, 429} <= statuses.keys(), statuses
    # Many valid requests took the fast path; the full checks accepted the unusual valid
    # ones (and answered every invalid one) alike.
    # (A valid request is answered 200, or 429 when its account's budget is spent.)
    assert CASES // 10 < taken < statuses[200] + statuses[429] - 3, (taken, statuses)


async def test_what_the_relay_sends_takes_the_fast_path() -> None:
    rng = random.Random(20261211)
    server = SandboxServer(default_config(), clock=lambda: NOW)
    requests = Requests(rng)
    async with server, aiohttp.ClientSession() as session:
        url = f"{server.url}/12/measurement/conversions/{PIXEL}"
        for number in range(1, 4):
            conversions = [_conversion(rng, requests.conversion_id()) for _ in range(500)]
            body = orjson.dumps({"conversions": conversions})
            async with session.post(
                url, headers={"X-Pixel-Token": PIXEL_TOKENS[PIXEL]}, data=body
            ) as resp:
                assert resp.status == 200, await resp.text()
            assert server.web_fast_answers == number


def _fast_ip(values: list[str]) -> bool:
    """validation_fast.py's verdict on a request's ip_address values, sorted as it sorts them."""
    return validation_fast._all_ip_addresses(
        [v for v in values if ":" not in v], [v for v in values if ":" in v]
    )


def _reference_ip(value: str) -> bool:
    """validation.py's verdict on an ip_address value that counts (not blank)."""
    return validation._is_ip_address(value.strip())


def _random_ip_like(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        number = rng.getrandbits(128) >> rng.choice([0, 16, 64, 112])
        address = ipaddress.IPv6Address(number)
        return rng.choice([str(address), address.exploded, str(address).upper()])
    if roll < 0.5:
        return ".".join(str(rng.choice([0, 1, 9, 10, 99, 100, 199, 249, 255, 256])) for _ in "1234")
    alphabet = rng.choice(["0123456789.", "0123456789abcdefABCDEF:", "0f:.% g"])
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 41)))


def test_ip_addresses_are_checked_as_validation_checks_them() -> None:
    rng = random.Random(20261212)
    accepted = 0
    for _ in range(20_000):
        value = rng.choice(IP_ADDRESSES) if rng.random() < 0.1 else _random_ip_like(rng)
        if _fast_ip([value]):
            accepted += 1
            assert _reference_ip(value), value
    assert accepted > 5_000
    for _ in range(2_000):  # a request's addresses together: accepted only if each is
        values = [_random_ip_like(rng) for _ in range(rng.randint(1, 6))]
        if _fast_ip(values):
            assert all(map(_reference_ip, values)), values
    every_form = [str(ipaddress.IPv6Address(rng.getrandbits(128) >> 64)) for _ in range(50)]
    assert _fast_ip(["198.51.100.7", *every_form, "::1", "0.0.0.0"])


# Per part of a conversion time: values that are right, values that are not.
TIME_PARTS: Final = (
    (["2026", "2024", "0001", "9999"], ["0000", "٢٠٢٦"]),
    (["01", "02", "12"], ["13", "00"]),
    (["01", "28", "29", "30", "31"], ["32", "00"]),
    (["00", "09", "23"], ["24", "99"]),
    (["00", "59"], ["60"]),
    (["00", "59"], ["60", "61"]),
    (["000", "999"], ["12"]),
)


def test_times_and_amounts_are_checked_as_validation_checks_them() -> None:
    rng = random.Random(20261213)
    accepted = 0
    for _ in range(20_000):
        parts = [rng.choice(good if rng.random() < 0.8 else bad) for good, bad in TIME_PARTS]
        time = "{}-{}-{}T{}:{}:{}.{}Z".format(*parts)
        time = time if rng.random() < 0.9 else time + rng.choice(["\n", ",", " "])
        if validation_fast._all_times([time]):
            accepted += 1
            assert validation.valid_time(time), time
        elif validation.valid_time(time):
            assert parts[3] == "24" or parts[5] == "60", time  # a leap second, if ever taken
    assert accepted > 2_000
    samples = [*GOOD_TIMES, *NEAR["conversion_time"]]
    for _ in range(5_000):  # a request's times together: accepted only if each is
        times = rng.sample(samples, rng.randint(1, 4))
        if validation_fast._all_times(times):
            assert all(map(validation.valid_time, times)), times
    assert validation_fast._all_times(GOOD_TIMES)
    amounts = ["0", "20.00", "1.5", "1.", ".5", "-1", "1,5", "1e3", "٢", " 1", "", "0.0.1"]
    for _ in range(5_000):
        values = rng.sample(amounts, rng.randint(1, 3))
        if validation_fast._all_listed(validation_fast._AMOUNT_LIST, values):
            assert all(map(validation.is_amount, values)), values
    assert validation_fast._all_listed(validation_fast._AMOUNT_LIST, ["0", "20.00", "1.5"])
