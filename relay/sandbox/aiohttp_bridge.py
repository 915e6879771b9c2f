"""The routes that are not worth a fast path (resources, control, the OpenAPI page, 404s,
405s, HEAD, unusual targets) answered by the aiohttp application itself, in process.

Each such request is handed to a fresh aiohttp request handler over an in-memory transport,
as `Connection: close`: what aiohttp writes until it closes is the answer, exactly as
aiohttp would have sent it (the server only re-frames it for its own connection). A drop
(aborting the transport, an injected fault) drops the client's connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from relay.sandbox.http11 import HOP_BY_HOP, Answer, HttpRequest, refusal

# Not forwarded: the server answered 100 Continue itself and decodes the framing.
_NOT_FORWARDED: Final = HOP_BY_HOP | {"expect", "te", "upgrade"}


class _Pipe(asyncio.Transport):
    """The transport aiohttp's handler writes to: collects the answer until closed."""

    def __init__(self, real: asyncio.Transport, done: asyncio.Future[bytes | None]):
        super().__init__()
        self._real = real
        self._done = done
        self._chunks: list[bytes] = []
        self._closing = False
        self._protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":  # aiohttp would set keepalive options on it: not its socket
            return default
        return self._real.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._chunks.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self._end(b"".join(self._chunks))

    def abort(self) -> None:
        self._end(None)

    def client_gone(self) -> None:
        """The client's connection is lost: aiohttp's handler learns it as from a socket."""
        self._end(None, ConnectionResetError("the client closed the connection"))

    def _end(self, answer: bytes | None, exc: Exception | None = None) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._done.done():
            self._done.set_result(answer)
        protocol = self._protocol
        if isinstance(protocol, asyncio.Protocol):
            asyncio.get_running_loop().call_soon(protocol.connection_lost, exc)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


def _forwarded(request: HttpRequest) -> bytes:
    """The request as aiohttp is to read it: its fields in order, the body by length."""
    request_line = f"{request.method} {request.target} HTTP/{request.version}\r\n"
    lines = [request_line.encode("utf-8", "surrogateescape")]
    for name, value in request.headers:
        if name.lower().decode("latin-1") not in _NOT_FORWARDED:
            lines.append(name + b": " + value + b"\r\n")
    lines.append(b"Connection: close\r\n")
    if request.body or request.header(b"content-length") is not None:
        lines.append(f"Content-Length: {len(request.body)}\r\n".encode())
    elif request.header(b"transfer-encoding") is not None:
        lines.append(b"Content-Length: 0\r\n")
    lines.append(b"\r\n")
    lines.append(request.body)
    return b"".join(lines)


def _parsed(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("utf-8", "surrogateescape").split("\r\n")
    _, status, reason = [*status_line.split(" ", 2), ""][:3]
    headers: list[tuple[str, str]] = []
    framing: list[tuple[str, str]] = []
    for line in fields:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        if key in ("content-length", "transfer-encoding"):
            framing.append((name.strip(), value.strip()))
        elif key not in HOP_BY_HOP and key not in ("date", "server"):
            headers.append((name.strip(), value.strip()))
    return Answer(int(status), headers, body, reason, tuple(framing))


class AiohttpBridge:
    """Answers a request with `server`'s application (`web.AppRunner(...).server`)."""

    def __init__(self, server: web.Server):
        self._server = server

    async def answer(self, request: HttpRequest) -> Answer | None:
        if request.body_too_large:
            return refusal(413, "REQUEST_TOO_LARGE", "The request body is too large")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes | None] = loop.create_future()
        pipe = _Pipe(request.transport, done)
        handler = self._server()
        pipe.set_protocol(handler)
        request.on_client_gone = pipe.client_gone
        handler.connection_made(pipe)
        handler.data_received(_forwarded(request))
        raw = await done
        if raw is None:  # aiohttp dropped the connection: so does the server
            request.transport.abort()
            return None
        if not raw:
            return refusal(500, "INTERNAL_ERROR", "Internal error")
        return _parsed(raw)
