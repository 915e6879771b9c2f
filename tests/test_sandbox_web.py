"""The sandbox's web conversions endpoint and control endpoints, over real HTTP."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

import relay.sandbox
from relay.errors import ClosedError
from relay.sandbox.app import MAX_BODY_BYTES
from relay.sandbox.server import SandboxServer, event_loop_factory
from tests.sandbox_fixtures import (
    ACCOUNT,
    EXAMPLE_PIXEL,
    OTHER_PIXEL,
    PHONE_HASH,
    PIXEL,
    SECRETS,
    Reply,
    SandboxClient,
    conversion,
    default_config,
    example_config,
    example_request,
    oauth_header,
    running_sandbox,
)

Conversion = dict[str, Any]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    async with running_sandbox() as client:
        yield client


def assert_x_error_shape(body: Any) -> None:
    assert set(body) == {"errors", "request"}
    assert set(body["request"]) == {"params"}
    for error in body["errors"]:
        assert set(error) <= {"code", "message", "parameter"}
        assert error["code"] and error["message"]


async def test_x_documented_example_is_accepted_with_the_documented_answer() -> None:
    async with running_sandbox(example_config()) as client:
        reply = await client.post_conversions(example_request(), EXAMPLE_PIXEL)
        assert reply.status == 200, reply.text
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.headers["x-current-api-version"] == "12"
        body = reply.body
        assert body["request"] == {"params": {"account_id": "18ce552mlaq"}}
        assert set(body["data"]) == {"conversions_processed", "debug_id"}
        assert body["data"]["conversions_processed"] == 1
        assert uuid.UUID(body["data"]["debug_id"]).version == 4

        journal = await client.journal()
        assert journal["total"] == 1
        [entry] = journal["conversions"]
        assert entry["conversion"] == example_request()["conversions"][0]
        assert entry["pixel_id"] == EXAMPLE_PIXEL
        assert entry["account_id"] == "18ce552mlaq"
        assert entry["debug_id"] == body["data"]["debug_id"]
        assert entry["duplicate"] is False
        assert entry["auth"] == "oauth"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["received_at"])


@pytest.mark.parametrize(
    "change",
    [
        {"value": 20},
        {"value": 20.5},
        {"value": "20"},
        {"event_id": f"tw-{PIXEL}-o87nf"},
        {"identifiers": [{"ip_address": "8.25.197.25", "user_agent": "Mozilla/5.0"}]},
        {
            "identifiers": [
                {"hashed_email": "E586883B2B4FAF78D48300A79E0E15138D664CDF796FFB86E533170A9893EDA8"}
            ]
        },
        {"identifiers": [{"hashed_phone_number": PHONE_HASH}, {"ip_address": "1.0.0.0"}]},
        {"identifiers": [{"twclid": "abc"}, {"hashed_email": ""}]},
        {"contents": []},
        {"description": None, "contents": None, "value": None, "conversion_id": None},
        {"number_items": None, "price_currency": "EUR"},
    ],
    ids=str,
)
async def test_valid_variants_are_accepted(sandbox: SandboxClient, change: Conversion) -> None:
    body = {"conversions": [conversion(**change)]}
    reply = await sandbox.post_conversions(body)
    assert reply.status == 200, reply.text
    assert reply.body["data"]["conversions_processed"] == 1


def with_identifiers(*identifiers: Any) -> Conversion:
    return conversion(identifiers=list(identifiers))


EMAIL_HASH_OBJ = {
    "hashed_email": "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"
}

# name -> (conversion, X's code, X's parameter)
BROKEN: dict[str, tuple[Conversion, str, str]] = {
    "no conversion_time": (
        conversion(conversion_time=None),
        "MISSING_PARAMETER",
        "conversion_time",
    ),
    "time without Z": (
        conversion(conversion_time="2026-11-20T10:00:00.123"),
        "INVALID_PARAMETER",
        "conversion_time",
    ),
    "time with an offset": (
        conversion(conversion_time="2026-11-20T10:00:00.123+00:00"),
        "INVALID_PARAMETER",
        "conversion_time",
    ),
    "time without milliseconds": (
        conversion(conversion_time="2026-11-20T10:00:00Z"),
        "INVALID_PARAMETER",
        "conversion_time",
    ),
    "no such date": (
        conversion(conversion_time="2026-02-30T10:00:00.123Z"),
        "INVALID_PARAMETER",
        "conversion_time",
    ),
    "time as epoch": (
        conversion(conversion_time=1_700_000_000_000),
        "INVALID_PARAMETER",
        "conversion_time",
    ),
    "no event_id": (conversion(event_id=None), "MISSING_PARAMETER", "event_id"),
    "event of another pixel": (conversion(event_id="p9x01"), "INVALID_PARAMETER", "event_id"),
    "tw- form of another pixel": (
        conversion(event_id=f"tw-{OTHER_PIXEL}-p9x01"),
        "INVALID_PARAMETER",
        "event_id",
    ),
    "tw- form naming another pixel": (
        conversion(event_id=f"tw-{OTHER_PIXEL}-o87ne"),
        "INVALID_PARAMETER",
        "event_id",
    ),
    "unknown event": (conversion(event_id="zzzzz"), "INVALID_PARAMETER", "event_id"),
    "event_id a number": (conversion(event_id=5), "INVALID_PARAMETER", "event_id"),
    "no identifiers": (conversion(identifiers=None), "MISSING_PARAMETER", "identifiers"),
    "empty identifiers": (with_identifiers(), "INVALID_PARAMETER", "identifiers"),
    "identifiers an object": (
        conversion(identifiers=EMAIL_HASH_OBJ),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "ip only": (with_identifiers({"ip_address": "1.0.0.0"}), "INVALID_PARAMETER", "identifiers"),
    "user agent only": (
        with_identifiers({"user_agent": "Mozilla/5.0"}),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "only empty values": (
        with_identifiers({"twclid": ""}, {"hashed_email": ""}),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "two identifiers in one object": (
        with_identifiers({"twclid": "abc", **EMAIL_HASH_OBJ}),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "empty identifier object": (
        with_identifiers({}, EMAIL_HASH_OBJ),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "unknown identifier": (
        with_identifiers({"email": "a@b.c"}, EMAIL_HASH_OBJ),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "identifier not an object": (
        with_identifiers("abc", EMAIL_HASH_OBJ),
        "INVALID_PARAMETER",
        "identifiers",
    ),
    "short phone hash": (
        with_identifiers({"hashed_phone_number": PHONE_HASH[:-1]}),
        "INVALID_PARAMETER",
        "hashed_phone_number",
    ),
    "non-hex email hash": (
        with_identifiers({"hashed_email": "g" * 64}),
        "INVALID_PARAMETER",
        "hashed_email",
    ),
    "twclid a number": (
        with_identifiers({"twclid": 5}, EMAIL_HASH_OBJ),
        "INVALID_PARAMETER",
        "twclid",
    ),
    "conversion_id a number": (
        conversion(conversion_id=23294827),
        "INVALID_PARAMETER",
        "conversion_id",
    ),
    "value not a decimal": (conversion(value="twenty"), "INVALID_PARAMETER", "value"),
    "negative value": (conversion(value="-1.00"), "INVALID_PARAMETER", "value"),
    "value a boolean": (conversion(value=True), "INVALID_PARAMETER", "value"),
    "lower-case currency": (
        conversion(price_currency="usd"),
        "INVALID_PARAMETER",
        "price_currency",
    ),
    "two-letter currency": (
        conversion(price_currency="US"),
        "INVALID_PARAMETER",
        "price_currency",
    ),
    "zero items": (conversion(number_items=0), "INVALID_PARAMETER", "number_items"),
    "items as text": (conversion(number_items="3"), "INVALID_PARAMETER", "number_items"),
    "fractional items": (conversion(number_items=1.5), "INVALID_PARAMETER", "number_items"),
    "description a number": (conversion(description=5), "INVALID_PARAMETER", "description"),
    "contents an object": (
        conversion(contents={"content_id": "1"}),
        "INVALID_PARAMETER",
        "contents",
    ),
    "content not an object": (conversion(contents=["1"]), "INVALID_PARAMETER", "contents"),
    "unknown content field": (
        conversion(contents=[{"sku": "1"}]),
        "INVALID_PARAMETER",
        "contents",
    ),
    "content price not a decimal": (
        conversion(contents=[{"content_price": "cheap"}]),
        "INVALID_PARAMETER",
        "content_price",
    ),
    "content with zero items": (
        conversion(contents=[{"num_items": 0}]),
        "INVALID_PARAMETER",
        "num_items",
    ),
    "content_id a number": (
        conversion(contents=[{"content_id": 1}]),
        "INVALID_PARAMETER",
        "content_id",
    ),
    "unknown field": (conversion(email="a@b.c"), "INVALID_PARAMETER", "email"),
}


@pytest.mark.parametrize("name", list(BROKEN))
async def test_each_broken_rule_is_a_400(sandbox: SandboxClient, name: str) -> None:
    broken, code, parameter = BROKEN[name]
    reply = await sandbox.post_conversions({"conversions": [conversion(), broken]})
    assert reply.status == 400, reply.text
    assert reply.headers["x-current-api-version"] == "12"
    assert_x_error_shape(reply.body)
    assert reply.codes == [(code, parameter)]
    assert reply.body["request"] == {"params": {"account_id": ACCOUNT}}
    assert (await sandbox.journal())["total"] == 0, "no partial success"


async def test_bad_sha256_has_x_message(sandbox: SandboxClient) -> None:
    reply = await sandbox.post_conversions(
        {"conversions": [with_identifiers({"hashed_email": "abc"})]}
    )
    assert reply.status == 400
    assert reply.body["errors"] == [
        {
            "code": "INVALID_PARAMETER",
            "message": "hashed_email (abc) is not a valid SHA-256 hash",
            "parameter": "hashed_email",
        }
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "INVALID_PARAMETER"),
        (b"[]", "INVALID_PARAMETER"),
        (b"{}", "MISSING_PARAMETER"),
        (b'{"conversions": null}', "MISSING_PARAMETER"),
        (b'{"conversions": {"a": 1}}', "INVALID_PARAMETER"),
        (b'{"conversions": []}', "INVALID_PARAMETER"),
        (b'{"conversions": [1]}', "INVALID_PARAMETER"),
    ],
    ids=lambda v: v.decode() if isinstance(v, bytes) else v,
)
async def test_bad_bodies_are_400(sandbox: SandboxClient, body: bytes, code: str) -> None:
    reply = await sandbox.post_conversions(body)
    assert reply.status == 400, reply.text
    assert_x_error_shape(reply.body)
    assert reply.codes == [(code, "conversions")]


async def test_an_unknown_body_field_is_400(sandbox: SandboxClient) -> None:
    reply = await sandbox.post_conversions({"conversions": [conversion()], "pixel_id": PIXEL})
    assert reply.status == 400
    assert reply.codes == [("INVALID_PARAMETER", "pixel_id")]


async def test_more_than_500_conversions(sandbox: SandboxClient) -> None:
    many = [conversion(conversion_id=f"c{i}") for i in range(501)]
    reply = await sandbox.post_conversions({"conversions": many})
    assert reply.status == 400
    assert reply.body["errors"] == [
        {
            "code": "INVALID_PARAMETER",
            "message": "Conversion count limit is 500",
            "parameter": "conversions",
        }
    ]
    reply = await sandbox.post_conversions({"conversions": many[:500]})
    assert reply.status == 200, reply.text
    assert reply.body["data"]["conversions_processed"] == 500


async def test_errors_are_all_reported_once_and_never_name_the_conversion(
    sandbox: SandboxClient,
) -> None:
    body = {
        "conversions": [
            conversion(),
            conversion(event_id="zzzzz"),
            conversion(number_items=0),
            conversion(event_id="zzzzz", conversion_id="other"),
        ]
    }
    reply = await sandbox.post_conversions(body)
    assert reply.status == 400
    assert sorted(reply.codes) == [
        ("INVALID_PARAMETER", "event_id"),
        ("INVALID_PARAMETER", "number_items"),
    ]
    assert not re.search(r"conversions\[|index", reply.text)
    assert (await sandbox.journal())["total"] == 0


async def test_unknown_pixel_is_404(sandbox: SandboxClient) -> None:
    reply = await sandbox.post_conversions({"conversions": [conversion()]}, "zzzzz")
    assert reply.status == 404
    assert reply.headers["x-current-api-version"] == "12"
    assert_x_error_shape(reply.body)
    assert reply.codes == [("WEB_EVENT_TAG_NOT_FOUND", "pixel_id")]


async def test_unknown_route_and_wrong_method(sandbox: SandboxClient) -> None:
    reply = await sandbox.request("GET", f"{sandbox.url}/12/no/such/route", headers={})
    assert reply.status == 404
    assert reply.headers["x-current-api-version"] == "12"
    assert reply.body == {
        "errors": [
            {"code": "ROUTE_NOT_FOUND", "message": "The requested resource could not be found"}
        ],
        "request": {"params": {}},
    }
    reply = await sandbox.request("GET", sandbox.conversions_url(), headers={})
    assert reply.status == 405
    assert reply.codes == [("METHOD_NOT_ALLOWED", None)]


async def test_duplicates_are_accepted_counted_and_flagged(sandbox: SandboxClient) -> None:
    first = await sandbox.post_conversions(
        {"conversions": [conversion(), conversion(conversion_id=None)]}
    )
    assert first.status == 200
    again = [
        conversion(),  # same pixel + event + conversion_id: a duplicate
        conversion(event_id=f"tw-{PIXEL}-o87ne"),  # the same event, written the long way
        conversion(event_id="o87nf"),  # another event: not a duplicate
        conversion(conversion_id=None),  # no conversion_id: never a duplicate
    ]
    second = await sandbox.post_conversions({"conversions": again})
    assert second.status == 200
    assert second.body["data"]["conversions_processed"] == 4

    journal = await sandbox.journal()
    assert [e["duplicate"] for e in journal["conversions"]] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    stats = await sandbox.stats()
    assert stats["conversions_accepted"] == 6
    assert stats["duplicates"] == 2


async def test_dedup_lasts_48_hours() -> None:
    now = [1_800_000_000.0]

    def clock() -> float:
        return now[0]

    async with running_sandbox(clock=clock) as client:

        async def duplicate_flag() -> bool:
            assert (await client.post_conversions({"conversions": [conversion()]})).status == 200
            entries = (await client.journal())["conversions"]
            flag: bool = entries[-1]["duplicate"]
            return flag

        assert await duplicate_flag() is False
        now[0] += 48 * 3600 - 1
        assert await duplicate_flag() is True
        now[0] += 1  # 48 h after the first: X counts it again
        assert await duplicate_flag() is False


async def test_journal_pages_and_filters(sandbox: SandboxClient) -> None:
    ours = [conversion(conversion_id=f"o{i}") for i in range(5)]
    other = conversion(event_id="p9x01", conversion_id="p0")
    assert (await sandbox.post_conversions({"conversions": ours[:3]})).status == 200
    assert (await sandbox.post_conversions({"conversions": [other]}, OTHER_PIXEL)).status == 200
    assert (await sandbox.post_conversions({"conversions": ours[3:]})).status == 200

    def ids(journal: dict[str, Any]) -> list[str]:
        return [e["conversion"]["conversion_id"] for e in journal["conversions"]]

    everything = await sandbox.journal()
    assert ids(everything) == ["o0", "o1", "o2", "p0", "o3", "o4"]
    assert everything["total"] == 6
    assert everything["truncated"] is False
    page = await sandbox.journal(offset=2, limit=3)
    assert ids(page) == ["o2", "p0", "o3"]
    assert page["total"] == 6
    mine = await sandbox.journal(pixel_id=PIXEL, offset=1, limit=3)
    assert ids(mine) == ["o1", "o2", "o3"]
    assert mine["total"] == 5
    assert ids(await sandbox.journal(offset=6)) == []
    bad = await sandbox.control("GET", "journal", limit="-1")
    assert bad.status == 400
    assert bad.body["errors"][0]["parameter"] == "limit"


async def test_journal_is_bounded_but_counters_keep_counting() -> None:
    async with running_sandbox(default_config(journal_max_entries=4)) as client:
        for batch in range(3):
            body = {"conversions": [conversion(conversion_id=f"b{batch}-{i}") for i in range(3)]}
            assert (await client.post_conversions(body)).status == 200
        journal = await client.journal()
        assert journal["truncated"] is True
        assert journal["total"] == 4
        assert journal["dropped"] == 5
        assert [e["conversion"]["conversion_id"] for e in journal["conversions"]] == [
            "b1-2",
            "b2-0",
            "b2-1",
            "b2-2",
        ]
        assert [
            e["conversion"]["conversion_id"] for e in (await client.journal(limit=1))["conversions"]
        ] == ["b1-2"]
        stats = await client.stats()
        assert stats["conversions_accepted"] == 9
        assert stats["journal"] == {"entries": 4, "dropped": 5}


async def test_stats_count_requests_and_rejections(sandbox: SandboxClient) -> None:
    assert (await sandbox.post_conversions({"conversions": [conversion()]})).status == 200
    assert (await sandbox.post_conversions({"conversions": [conversion()]})).status == 200
    assert (await sandbox.post_conversions({"conversions": []})).status == 400
    assert (await sandbox.post_conversions({"conversions": [conversion()]}, "zzzzz")).status == 404
    assert (await sandbox.request("GET", f"{sandbox.url}/nowhere", headers={})).status == 404
    await sandbox.journal()  # the control endpoints are not counted
    stats = await sandbox.stats()
    assert stats["requests"] == {
        "POST /12/measurement/conversions/{pixel_id}": {"200": 2, "400": 1, "404": 1},
        "unmatched": {"404": 1},
    }
    assert stats["rejected"] == {
        "INVALID_PARAMETER": 1,
        "WEB_EVENT_TAG_NOT_FOUND": 1,
        "ROUTE_NOT_FOUND": 1,
    }
    assert stats["conversions_accepted"] == 2
    assert stats["duplicates"] == 1


async def test_reset_clears_journal_counters_and_dedup(sandbox: SandboxClient) -> None:
    assert (await sandbox.post_conversions({"conversions": [conversion()]})).status == 200
    reply = await sandbox.control("POST", "reset")
    assert reply.status == 200
    assert (await sandbox.journal())["total"] == 0
    stats = await sandbox.stats()
    assert stats["requests"] == {}
    assert stats["conversions_accepted"] == 0
    assert (await sandbox.post_conversions({"conversions": [conversion()]})).status == 200
    assert (await sandbox.journal())["conversions"][0]["duplicate"] is False


async def test_config_shows_the_world_without_secrets(sandbox: SandboxClient) -> None:
    reply = await sandbox.control("GET", "config")
    assert reply.status == 200
    for secret in SECRETS:
        assert secret not in reply.text
    body = reply.body
    pixels = {p["id"]: p for p in body["pixels"]}
    assert pixels[PIXEL] == {
        "id": PIXEL,
        "account_id": ACCOUNT,
        "event_ids": ["o87ne", "o87nf", "o87ng"],
    }
    assert "18ce5600zzz" in {a["id"] for a in body["accounts"]}
    [token] = body["tokens"]
    assert token["access_token"] == "1000000001-relaydemoaccesstoken"
    assert "18ce5600zzz" not in token["accounts"]
    assert ACCOUNT in token["accounts"]


async def test_server_lifecycle() -> None:
    server = SandboxServer(default_config())
    with pytest.raises(ClosedError):
        _ = server.url
    async with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert not server.url.endswith(":0")
    with pytest.raises(ClosedError):
        _ = server.url
    await server.close()  # idempotent
    with pytest.raises(ClosedError):
        await server.start()


async def wait_for_line(stream: asyncio.StreamReader, what: Callable[[bytes], bool]) -> bytes:
    line = await asyncio.wait_for(stream.readline(), 30)
    assert what(line), line
    return line


async def test_run_sandbox_announces_serves_and_stops_on_sigterm() -> None:
    code = "from relay.sandbox.server import run_sandbox; run_sandbox('127.0.0.1', 0, None)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await wait_for_line(process.stdout, lambda b: b.startswith(b"sandbox listening"))
        match = re.fullmatch(rb"sandbox listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match and int(match[2]) > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(match[1].decode() + "/_sandbox/stats") as resp,
        ):
            assert resp.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_public_exports_are_sorted_and_importable() -> None:
    assert relay.sandbox.__all__ == sorted(relay.sandbox.__all__)
    for name in relay.sandbox.__all__:
        assert getattr(relay.sandbox, name) is not None, name


async def test_an_answer_aiohttp_makes_carries_the_edge_headers(sandbox: SandboxClient) -> None:
    # A body past the limit is refused by aiohttp itself (413), outside X's error bodies:
    # the version and budget headers must still be there, and the request counted.
    url = sandbox.conversions_url()
    headers = {
        "Content-Type": "application/json",
        "Authorization": oauth_header("POST", url, timestamp=int(time.time())),
    }
    too_large = io.BytesIO(b"{" + b" " * MAX_BODY_BYTES + b"}")
    async with sandbox.session.post(url, data=too_large, headers=headers) as resp:
        reply = Reply(resp.status, resp.headers, await resp.text())
    assert reply.status == 413
    assert reply.headers["x-current-api-version"] == "12"
    assert int(reply.headers["x-account-rate-limit-remaining"]) > 0
    assert int(reply.headers["x-rate-limit-remaining"]) > 0
    stats = await sandbox.stats()
    assert stats["requests"]["POST /12/measurement/conversions/{pixel_id}"] == {"413": 1}


def test_the_served_sandbox_runs_on_uvloop_and_falls_back_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvloop

    assert event_loop_factory() is uvloop.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import fails
    assert event_loop_factory() is None
