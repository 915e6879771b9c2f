"""The sandbox's own HTTP/1.1 server: asyncio.Protocol over httptools' C parser.

It knows HTTP, not X: every complete request goes to one `Dispatch` coroutine function
(routing.py), whose `Answer` it writes back. What it does itself:

- keep-alive (HTTP/1.1 by default, HTTP/1.0 on `Connection: keep-alive`), closed after
  `keepalive_s` idle; `Connection: close` honoured after the answer.
- pipelining: requests on one connection are answered one after the other, in order; past
  `max_pipelined` waiting requests the connection stops being read until they drain.
- bodies by Content-Length or chunked, up to `max_body_bytes`; `Expect: 100-continue`
  answered when the request is next in line.
- refusals with a JSON body in X's error shape, then close: malformed requests 400, a
  request line longer than `max_url_bytes` 414, header sections over `max_header_bytes`
  431. A body over `max_body_bytes` is dispatched at once with `body_too_large` (the route
  decides the 413, as X's routes count it), the rest of it read and thrown away for up to
  `LINGER_S` so that the client sees the answer, then the connection closes.
- graceful close: stop listening, close idle connections, let the busy ones finish their
  answer (up to a deadline), abort what is left.

A dispatch that completes without suspending is run inline from `data_received` (the hot
routes never wait on anything): no task per request. One that suspends goes on as a task.
An `immediate` function, if given, is asked before the dispatch: a plain call for the
requests it answers at once (mact_fast.py's).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final, cast

import httptools
import orjson

from relay.sandbox.responses import API_VERSION, API_VERSION_HEADER

LINGER_S: Final = 10.0  # reading what follows a refused body, so that the client sees the 413
SWEEP_S: Final = 5.0  # how often idle connections are looked at
SERVER_HEADER: Final = "relay-sandbox"
# Hop-by-hop: the server decides them for its own connection, whatever an answer carried.
HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "content-length", "transfer-encoding"})
_NO_BODY_STATUSES: Final = frozenset({204, 304})
# The fields the server and the fast paths read, noted while parsing.
_NOTED: Final = frozenset(
    {b"host", b"content-length", b"authorization", b"content-type", b"expect"}
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_url_bytes: int = 8190
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    max_pipelined: int = 64
    keepalive_s: float = 75.0


@dataclass(slots=True)
class HttpRequest:
    """One parsed request. `target` is the request target as sent (path and query);
    `headers` the raw fields in order; `body` the decoded body (chunks joined)."""

    method: str
    target: str
    version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    host: bytes | None  # the first Host field
    keep_alive: bool
    transport: asyncio.Transport
    body_too_large: bool = False
    authorization: bytes | None = None  # the first Authorization field
    content_type: bytes | None = None  # the first Content-Type field
    # Set by a dispatch that must learn when the client goes away before its answer.
    on_client_gone: Callable[[], None] | None = None

    def header(self, name: bytes) -> bytes | None:
        """The first field named `name` (lower case), if any."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass(slots=True)
class Answer:
    """What to send back. `headers` are end-to-end ones; Content-Length is added unless a
    header of `headers` already says how the body is framed (a HEAD answer says the GET's
    length). `close`: close the connection after it."""

    status: int
    headers: Iterable[tuple[str, str]]
    body: bytes = b""
    reason: str = ""
    framing: tuple[tuple[str, str], ...] = ()  # Content-Length / Transfer-Encoding as given
    close: bool = False


# None: the dispatch dropped the connection itself (an injected fault): nothing to send.
Dispatch = Callable[[HttpRequest], Coroutine[Any, Any, Answer | None]]
# Asked first, if given: the answer at once, or None to go on to the Dispatch.
Immediate = Callable[[HttpRequest], Answer | None]


def refusal(status: int, code: str, message: str) -> Answer:
    """The server's own answer, in X's error shape: it never reached a route."""
    body = orjson.dumps({"errors": [{"code": code, "message": message}], "request": {"params": {}}})
    headers = (("Content-Type", "application/json"), (API_VERSION_HEADER, API_VERSION))
    return Answer(status, headers, body, close=True)


class _Refused(Exception):
    def __init__(self, answer: Answer):
        self.answer = answer


class _DateHeader:
    """`Date`, formatted once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._line


_DATE: Final = _DateHeader()


def serialize(answer: Answer, keep_alive: bool, http10: bool) -> bytes:
    reason = answer.reason or _reason(answer.status)
    lines = [f"HTTP/1.1 {answer.status} {reason}\r\n"]
    for name, value in answer.headers:
        lines.append(f"{name}: {value}\r\n")
    if answer.framing:
        lines.extend(f"{name}: {value}\r\n" for name, value in answer.framing)
    elif answer.status >= 200 and answer.status not in _NO_BODY_STATUSES:
        lines.append(f"Content-Length: {len(answer.body)}\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    elif http10:
        lines.append("Connection: keep-alive\r\n")
    lines.append(f"Server: {SERVER_HEADER}\r\n")
    head = "".join(lines).encode("utf-8", "surrogateescape")
    return b"".join((head, _DATE.line(), b"\r\n", answer.body))


_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}


def _reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


class _Resume:
    """Awaits a coroutine that was started by hand and suspended on `first`, so that a task
    can carry it on from where it stopped."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Answer | None], first: Any):
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Answer | None]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation too: on into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]


async def _resumed(coro: Coroutine[Any, Any, Answer | None], first: Any) -> Answer | None:
    return await _Resume(coro, first)


class _Message:
    """The request being parsed; the fields the server itself reads noted on the way."""

    __slots__ = (
        "authorization",
        "body",
        "body_bytes",
        "content_length",
        "content_type",
        "expects_continue",
        "header_bytes",
        "headers",
        "host",
        "too_large",
        "url",
        "url_bytes",
    )

    def __init__(self) -> None:
        self.url: list[bytes] = []
        self.url_bytes = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.content_length: int | None = None
        self.expects_continue = False
        self.host: bytes | None = None
        self.authorization: bytes | None = None
        self.content_type: bytes | None = None
        self.too_large = False  # dispatched already: what is left of the body is thrown away

    def note(self, lower: bytes, value: bytes) -> None:
        """A field of `_NOTED`, its name in lower case."""
        if lower == b"host":
            if self.host is None:
                self.host = value
        elif lower == b"content-length":
            if self.content_length is None:
                with contextlib.suppress(ValueError):
                    self.content_length = int(value)
        elif lower == b"authorization":
            if self.authorization is None:
                self.authorization = value
        elif lower == b"content-type":
            if self.content_type is None:
                self.content_type = value
        elif lower == b"expect":
            self.expects_continue = value.strip().lower() == b"100-continue"


class Connection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: HttpServer):
        self._server = server
        self._limits = server.limits
        self._dispatch = server.dispatch
        self._immediate = server.immediate
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._message: _Message | None = None
        self._queue: deque[HttpRequest | Answer] = deque()
        self._busy = False  # a dispatch is under way (only one at a time, in order)
        self._task: asyncio.Task[Answer | None] | None = None
        self._in_flight: HttpRequest | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._closed = False
        self._closing_when_read = False  # a refused body is still arriving
        self._continue_owed = False  # a 100 Continue to send once the request is next
        self.last_active = self._loop.time()

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.forget(self)
        self._queue.clear()
        request, self._in_flight = self._in_flight, None
        if request is not None and request.on_client_gone is not None:
            request.on_client_gone()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self.last_active = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(refusal(400, "BAD_REQUEST", "Protocol upgrades are not supported"))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.answer)
            else:
                raise
        except httptools.HttpParserError as exc:
            self._refuse(refusal(400, "BAD_REQUEST", f"Malformed HTTP request: {exc}"))
        self._pump()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._pump()

    # --- httptools callbacks

    def on_message_begin(self) -> None:
        self._message = _Message()

    def on_url(self, url: bytes) -> None:
        message = self._current()
        message.url.append(url)
        message.url_bytes += len(url)
        if message.url_bytes > self._limits.max_url_bytes:
            raise _Refused(refusal(414, "URI_TOO_LONG", "The request line is too long"))

    def on_header(self, name: bytes, value: bytes) -> None:
        message = self._message or self._current()
        message.headers.append((name, value))
        lower = name.lower()
        if lower in _NOTED:
            message.note(lower, value)
        message.header_bytes += len(name) + len(value) + 4
        if message.header_bytes > self._limits.max_header_bytes:
            raise _Refused(
                refusal(431, "HEADERS_TOO_LARGE", "The request's header fields are too large")
            )

    def on_headers_complete(self) -> None:
        message = self._current()
        length = message.content_length
        if length is not None and length > self._limits.max_body_bytes:
            self._too_large(message)
            return
        if message.expects_continue:
            if self._busy or self._queue:
                self._continue_owed = True
            else:
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        message = self._current()
        if message.too_large:
            return
        message.body_bytes += len(body)
        if message.body_bytes > self._limits.max_body_bytes:
            self._too_large(message)
            return
        message.body.append(body)

    def on_message_complete(self) -> None:
        message, self._message = self._current(), None
        if message.too_large:
            if self._closing_when_read:
                self._close()
            return
        self._enqueue(self._request(message, b"".join(message.body)))

    # --- the queue of requests, answered in order

    def _current(self) -> _Message:
        if self._message is None:  # httptools always begins a message first
            self._message = _Message()
        return self._message

    def _request(self, message: _Message, body: bytes, too_large: bool = False) -> HttpRequest:
        assert self._transport is not None
        method = self._parser.get_method().decode("ascii", "replace")
        return HttpRequest(
            method=method,
            target=b"".join(message.url).decode("utf-8", "surrogateescape"),
            version=self._parser.get_http_version(),
            headers=message.headers,
            body=body,
            host=message.host,
            keep_alive=bool(self._parser.should_keep_alive()) and not too_large,
            transport=self._transport,
            body_too_large=too_large,
            authorization=message.authorization,
            content_type=message.content_type,
        )

    def _too_large(self, message: _Message) -> None:
        """Dispatched now, body-less; the rest of the body is read and thrown away."""
        message.too_large = True
        message.body.clear()
        self._enqueue(self._request(message, b"", too_large=True))

    def _enqueue(self, item: HttpRequest | Answer) -> None:
        self._queue.append(item)
        if len(self._queue) > self._limits.max_pipelined and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def _refuse(self, answer: Answer) -> None:
        """A refusal is answered in its turn; nothing after it is read."""
        self._message = None
        self._enqueue(answer)
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _pump(self) -> None:
        while self._queue and not self._busy and not self._closed and not self._writing_paused:
            item = self._queue.popleft()
            if isinstance(item, Answer):
                self._write(serialize(item, keep_alive=False, http10=False))
                self._close()
                return
            if self._immediate is not None:
                try:
                    answer = self._immediate(item)
                except Exception:  # a bug answers 500, as on the dispatch
                    self._server.logger_exception(item)
                    answer = refusal(500, "INTERNAL_ERROR", "Internal error")
                if answer is not None:
                    self._answer(item, answer)
                    continue
            self._busy = True
            coro = self._dispatch(item)
            try:
                first = coro.send(None)
            except StopIteration as done:
                self._busy = False
                self._answer(item, done.value)
                continue
            except Exception:  # a route's bug answers 500, as aiohttp would
                self._server.logger_exception(item)
                self._busy = False
                self._answer(item, refusal(500, "INTERNAL_ERROR", "Internal error"))
                continue
            task = self._loop.create_task(_resumed(coro, first))
            self._task = task
            self._in_flight = item
            task.add_done_callback(functools.partial(self._finished, item))
            return
        if (
            self._reading_paused
            and not self._queue
            and not self._closed
            and (self._message is None or not self._closing_when_read)
        ):
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()

    def _finished(self, request: HttpRequest, task: asyncio.Task[Answer | None]) -> None:
        self._task = None
        self._in_flight = None
        self._busy = False
        if task.cancelled():
            self._abort()
            return
        exc = task.exception()
        if exc is not None:
            self._server.logger_exception(request, exc)
            self._answer(request, refusal(500, "INTERNAL_ERROR", "Internal error"))
        else:
            self._answer(request, task.result())
        self._pump()

    def _answer(self, request: HttpRequest, answer: Answer | None) -> None:
        if self._closed or answer is None or self._transport is None:
            return
        if self._transport.is_closing():  # dropped by the route (an injected fault)
            self._closed = True
            return
        keep_alive = request.keep_alive and not answer.close and not self._server.closing
        self._write(serialize(answer, keep_alive, request.version == "1.0"))
        if request.body_too_large and self._message is not None:
            # The client is still sending the refused body: read it out, then close.
            self._closing_when_read = True
            self._loop.call_later(LINGER_S, self._close)
            return
        if not keep_alive:
            self._close()
        elif self._continue_owed and not self._queue:
            self._continue_owed = False
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    def _close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._closed = True
            self._transport.abort()

    # --- for the server

    @property
    def idle(self) -> bool:
        return not self._busy and not self._queue and self._message is None

    def close_if_idle(self) -> bool:
        if self.idle:
            self._close()
        return self._closed

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._abort()


class HttpServer:
    """Serves `dispatch` on a socket. `start`, then `close` (graceful, up to a deadline)."""

    def __init__(
        self,
        dispatch: Dispatch,
        limits: Limits = Limits(),
        *,
        on_error: Callable[[HttpRequest, BaseException | None], None] | None = None,
        immediate: Immediate | None = None,
    ):
        """`immediate`, if given, is asked first for each request (no coroutine, no task):
        its answer, or None for `dispatch`'s."""
        self.dispatch = dispatch
        self.immediate = immediate
        self.limits = limits
        self.connections: set[Connection] = set()
        self.closing = False
        self._on_error = on_error
        self._server: asyncio.AbstractServer | None = None
        self._drained = asyncio.Event()  # closing, and no connection left
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listens; returns the address bound (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), host, port)
        self._sweeper = loop.create_task(self._sweep())
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(
        self, timeout_s: float = 10.0, before_drain: Awaitable[None] | None = None
    ) -> None:
        """Stops listening, closes idle connections, waits for busy ones to answer (up to
        `timeout_s`), aborts the rest. `before_drain` runs once nothing new is accepted
        (the app's shutdown: it releases requests that would wait forever)."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        if before_drain is not None:
            await before_drain
        for connection in list(self.connections):
            connection.close_if_idle()  # the ones that went idle meanwhile; busy ones close
        if self.connections:  # after their answer (keep-alive is off while closing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout_s)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _sweep(self) -> None:
        """Closes connections idle for longer than `keepalive_s`."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            horizon = loop.time() - self.limits.keepalive_s
            for connection in list(self.connections):
                if connection.last_active < horizon:
                    connection.close_if_idle()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if self.closing and not self.connections:
            self._drained.set()

    def logger_exception(self, request: HttpRequest, exc: BaseException | None = None) -> None:
        if self._on_error is not None:
            self._on_error(request, exc)
