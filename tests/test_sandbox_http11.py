"""The sandbox's own HTTP/1.1 server (http11.py, routing.py) over real sockets, byte by byte:
keep-alive, pipelining, chunked bodies, 100-continue, HEAD, refusals, closing; and that its
answers are aiohttp's, route for route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
import pytest
from aiohttp import web

from relay.sandbox.app import MAX_BODY_BYTES, create_app
from relay.sandbox.http11 import Limits
from relay.sandbox.routing import HOT_ROUTES, Router
from relay.sandbox.server import SandboxServer
from tests.sandbox_fixtures import PIXEL, conversion, default_config

DEADLINE_S: Final = 10.0
WEB_PATH: Final = f"/12/measurement/conversions/{PIXEL}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def pixel_token() -> str:
    return default_config().pixels[PIXEL].pixel_token.reveal()


@contextlib.asynccontextmanager
async def own_server(**kwargs: Any) -> AsyncIterator[tuple[str, int]]:
    async with SandboxServer(default_config(), own_server=True, **kwargs) as server:
        host, _, port = server.url.removeprefix("http://").rpartition(":")
        yield host, int(port)


@contextlib.asynccontextmanager
async def connection(
    address: tuple[str, int],
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(*address)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_answer(reader: asyncio.StreamReader, *, head: bool = False) -> Answer:
    async with asyncio.timeout(DEADLINE_S):
        status_line = await reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        body = await reader.readexactly(length)
    return Answer(int(status_line.split()[1]), headers, body)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(DEADLINE_S):
        return await reader.read() == b""


def web_request(body: bytes, *, chunked: bool = False, close: bool = False) -> bytes:
    framing = (
        b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % len(body)
    )
    head = (
        b"POST " + WEB_PATH.encode() + b" HTTP/1.1\r\nHost: sandbox\r\n"
        b"Content-Type: application/json\r\nX-Pixel-Token: "
        + pixel_token().encode()
        + b"\r\n"
        + framing
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
    )
    if not chunked:
        return head + body
    middle = len(body) // 2
    parts = [body[:middle], body[middle:]]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def web_body(count: int = 2) -> bytes:
    return orjson.dumps({"conversions": [conversion(conversion_id=f"o-{i}") for i in range(count)]})


STATS: Final = b"GET /_sandbox/stats HTTP/1.1\r\nHost: sandbox\r\n\r\n"


async def test_keep_alive_answers_request_after_request_on_one_connection() -> None:
    async with own_server() as address, connection(address) as (reader, writer):
        for _ in range(3):
            writer.write(web_request(web_body()))
            answer = await read_answer(reader)
            assert answer.status == 200, answer.body
            assert answer.json()["data"]["conversions_processed"] == 2
            assert "connection" not in answer.headers  # HTTP/1.1: kept open
        writer.write(STATS)
        stats = (await read_answer(reader)).json()
    assert stats["requests"][f"POST {next(r for r in HOT_ROUTES if 'pixel' in r)}"] == {"200": 3}


async def test_pipelined_requests_are_answered_in_order() -> None:
    unsigned_event = b"POST /12/conversion_event?app_id=1 HTTP/1.1\r\nHost: sandbox\r\n\r\n"
    unknown = b"GET /12/nowhere HTTP/1.1\r\nHost: sandbox\r\n\r\n"
    async with own_server() as address, connection(address) as (reader, writer):
        # One write: a cold route, a hot one, a 404, a hot one with a body, the cold one again.
        writer.write(STATS + unsigned_event + unknown + web_request(web_body(3)) + STATS)
        answers = [await read_answer(reader) for _ in range(5)]
    assert [a.status for a in answers] == [200, 401, 404, 200, 200]
    assert answers[1].json()["errors"][0]["code"] == "UNAUTHORIZED_ACCESS"
    assert answers[2].json()["errors"][0]["code"] == "ROUTE_NOT_FOUND"
    assert answers[3].json()["data"]["conversions_processed"] == 3
    assert answers[4].json()["requests"]["POST /12/conversion_event"] == {"401": 1}


async def test_chunked_body_is_read_as_the_same_body_by_length() -> None:
    async with own_server() as address, connection(address) as (reader, writer):
        writer.write(web_request(web_body(4), chunked=True))
        chunked = await read_answer(reader)
        writer.write(web_request(web_body(4)))
        by_length = await read_answer(reader)
    assert chunked.status == by_length.status == 200
    assert chunked.json()["data"]["conversions_processed"] == 4


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    body = web_body()
    head = (
        web_request(body).removesuffix(body).removesuffix(b"\r\n") + b"Expect: 100-continue\r\n\r\n"
    )
    async with own_server() as address, connection(address) as (reader, writer):
        writer.write(head)
        async with asyncio.timeout(DEADLINE_S):
            assert await reader.readline() == b"HTTP/1.1 100 Continue\r\n"
            assert await reader.readline() == b"\r\n"
        writer.write(body)
        answer = await read_answer(reader)
    assert answer.status == 200


async def test_head_answers_the_get_headers_without_a_body() -> None:
    async with own_server() as address, connection(address) as (reader, writer):
        writer.write(b"HEAD /_sandbox/stats HTTP/1.1\r\nHost: sandbox\r\n\r\n" + STATS)
        head = await read_answer(reader, head=True)
        get = await read_answer(reader)  # the next answer starts right after the head
    assert head.status == get.status == 200
    assert int(head.headers["content-length"]) > 0
    assert get.json()["requests"] == {}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: sandbox\r\nContent-Length: nope\r\n\r\n",
        b"POST /12/conversion_event HTTP/1.1\r\nHost: sandbox\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["no-request-line", "bad-content-length", "bad-chunk"],
)
async def test_a_malformed_request_gets_400_with_a_json_body_then_close(
    request_bytes: bytes,
) -> None:
    async with own_server() as address, connection(address) as (reader, writer):
        writer.write(request_bytes)
        answer = await read_answer(reader)
        assert answer.status == 400
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["errors"][0]["code"] == "BAD_REQUEST"
        assert answer.headers["connection"] == "close"
        assert await closed_by_server(reader)


async def test_a_good_request_before_a_malformed_one_is_still_answered() -> None:
    async with own_server() as address, connection(address) as (reader, writer):
        writer.write(STATS + b"BROKEN\r\n\r\n")
        assert (await read_answer(reader)).status == 200
        assert (await read_answer(reader)).status == 400
        assert await closed_by_server(reader)


async def test_a_declared_oversize_body_on_a_cold_route_gets_413_then_close() -> None:
    declared = MAX_BODY_BYTES + 1
    request = (
        b"POST /_sandbox/faults HTTP/1.1\r\nHost: sandbox\r\nContent-Length: %d\r\n\r\n{" % declared
    )
    async with own_server() as address, connection(address) as (reader, writer):
        writer.write(request)
        answer = await read_answer(reader)
        assert answer.status == 413
        assert answer.json()["errors"][0]["code"] == "REQUEST_TOO_LARGE"
        assert answer.headers["connection"] == "close"
        writer.close()  # the client gives up on the rest of its body


async def test_oversize_request_line_and_headers_are_refused() -> None:
    long_target = b"/_sandbox/stats?" + b"a" * Limits().max_url_bytes
    many_headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))
    async with own_server() as address:
        async with connection(address) as (reader, writer):
            writer.write(b"GET " + long_target + b" HTTP/1.1\r\nHost: sandbox\r\n\r\n")
            assert (await read_answer(reader)).status == 414
            assert await closed_by_server(reader)
        async with connection(address) as (reader, writer):
            writer.write(
                b"GET /_sandbox/stats HTTP/1.1\r\nHost: sandbox\r\n" + many_headers + b"\r\n"
            )
            assert (await read_answer(reader)).status == 431
            assert await closed_by_server(reader)


async def test_connection_close_and_http10_close_after_the_answer() -> None:
    async with own_server() as address:
        async with connection(address) as (reader, writer):
            writer.write(web_request(web_body(), close=True))
            answer = await read_answer(reader)
            assert answer.status == 200
            assert answer.headers["connection"] == "close"
            assert await closed_by_server(reader)
        async with connection(address) as (reader, writer):
            writer.write(b"GET /_sandbox/stats HTTP/1.0\r\nHost: sandbox\r\n\r\n")
            assert (await read_answer(reader)).status == 200
            assert await closed_by_server(reader)
        async with connection(address) as (reader, writer):  # 1.0 asking to keep it
            writer.write(b"GET /_sandbox/stats HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
            first = await read_answer(reader)
            assert first.headers["connection"] == "keep-alive"
            assert (await read_answer(reader)).status == 200


async def test_closing_the_server_closes_idle_connections() -> None:
    server = SandboxServer(default_config(), own_server=True)
    async with server:
        host, _, port = server.url.removeprefix("http://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(STATS)
        assert (await read_answer(reader)).status == 200
    assert await closed_by_server(reader)
    writer.close()


async def test_closing_the_server_lets_an_answer_in_progress_finish() -> None:
    server = SandboxServer(default_config(), own_server=True)
    async with server:
        host, _, port = server.url.removeprefix("http://").rpartition(":")
        async with aiohttp.ClientSession() as session:
            # A hang fault holds the request until the server's shutdown releases it.
            faults = {"hang_rate": 1.0, "hang_max_s": 30}
            async with session.post(f"{server.url}/_sandbox/faults", json=faults) as resp:
                assert resp.status == 200, await resp.text()
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(web_request(web_body()))
            await hang_counted(session, server.url)
    # Released by the shutdown, the hung request ends in a drop: closed, not left open.
    assert await closed_by_server(reader)
    writer.close()


async def hang_counted(session: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while True:
            async with session.get(f"{url}/_sandbox/stats") as resp:
                if (await resp.json())["faults"].get("hang"):
                    return
            await asyncio.sleep(0.02)  # polling the stats: the only view from outside


async def test_hot_routes_answer_as_aiohttp_does() -> None:
    """The same requests to the aiohttp server and to the own server: same statuses,
    bodies and end-to-end headers."""
    requests = [
        web_request(web_body(2)),
        web_request(b'{"conversions": [{"event_id": "nope"}]}'),
        web_request(b"not json"),
        b"POST /12/conversion_event?app_id=333903271 HTTP/1.1\r\nHost: s\r\n\r\n",
        b"POST /12/measurement/conversions/unknown HTTP/1.1\r\nHost: s\r\n\r\n",
    ]
    answers: dict[bool, list[Answer]] = {}
    for own in (False, True):
        async with SandboxServer(default_config(), own_server=own) as server:
            host, _, port = server.url.removeprefix("http://").rpartition(":")
            async with connection((host, int(port))) as (reader, writer):
                answers[own] = []
                for request in requests:
                    writer.write(request)
                    answers[own].append(await read_answer(reader))
    ignored = {"date", "server", "content-length", "connection", "keep-alive"}
    for theirs, ours in zip(answers[False], answers[True], strict=True):
        assert ours.status == theirs.status
        assert ours.json().keys() == theirs.json().keys()
        if "errors" in theirs.json():
            assert ours.body == theirs.body
        assert {k: v for k, v in ours.headers.items() if k not in ignored} == {
            k: v for k, v in theirs.headers.items() if k not in ignored
        }


@pytest.mark.parametrize(
    ("method", "target", "host", "fast"),
    [
        ("POST", "/12/conversion_event?app_id=1", b"h", "/12/conversion_event"),
        ("POST", f"{WEB_PATH}", b"h", "/12/measurement/conversions/{pixel_id}"),
        ("GET", "/12/conversion_event", b"h", None),  # aiohttp answers its 405
        ("POST", "/12/conversion_%65vent", b"h", None),  # percent-encoded
        ("POST", "/12/measurement/conversions/..", b"h", None),  # dot segment
        ("POST", "/12/measurement/conversions/a/b", b"h", None),
        ("POST", "/12/conversion_event", None, None),  # no Host
        ("POST", "/12/accounts/a/app_event_tags", b"h", None),  # a cold route
    ],
)
async def test_the_conversion_endpoints_take_the_fast_path_and_nothing_unusual_does(
    method: str, target: str, host: bytes | None, fast: str | None
) -> None:
    app = create_app(default_config())
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert runner.server is not None
        router = Router(app, runner.server, MAX_BODY_BYTES)
        found = router.fast_route(method, target, host)
        assert (found[0].resource.canonical if found and found[0].resource else None) == fast
        if fast and "{" in fast:
            assert found is not None and found[1] == {"pixel_id": PIXEL}
    finally:
        await runner.cleanup()
