"""A TCP proxy in front of the embedded broker that can swallow requests: the broker never
sees them and the client never gets an answer (a broker that drops a request)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from relay.broker import broker_command, free_port, wait_until_answering
from relay.signals import die_with_parent

PRODUCE = 0
METADATA = 3


@dataclass
class SwallowingProxy:
    upstream_port: int
    port: int = field(default_factory=free_port)
    to_swallow: dict[int, int] = field(default_factory=dict)  # API key -> requests left
    swallowed: dict[int, int] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def swallow(self, api_key: int, count: int = 1) -> None:
        self.to_swallow[api_key] = self.to_swallow.get(api_key, 0) + count

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        # Closed and waited for here: a socket still open when the test's loop ends warns
        # (an unraisable ResourceWarning) in whichever later test collects it.
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.add(up_writer)
        pipes = [
            asyncio.create_task(self._requests(reader, up_writer)),
            asyncio.create_task(self._answers(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
            self._writers.discard(w)

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            size = await reader.readexactly(4)
            frame = await reader.readexactly(struct.unpack(">i", size)[0])
            (api_key,) = struct.unpack_from(">h", frame)
            if self.to_swallow.get(api_key, 0) > 0:
                self.to_swallow[api_key] -= 1
                self.swallowed[api_key] = self.swallowed.get(api_key, 0) + 1
                continue
            writer.write(size + frame)
            await writer.drain()

    @staticmethod
    async def _answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()


@contextlib.asynccontextmanager
async def broker_behind_proxy() -> AsyncIterator[SwallowingProxy]:
    """Tansu advertising the proxy's address: every client connection goes through it."""
    broker_port = free_port()
    proxy = SwallowingProxy(broker_port)
    process = await asyncio.create_subprocess_exec(
        *broker_command("127.0.0.1", broker_port, advertised=proxy.bootstrap),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
        preexec_fn=die_with_parent,
    )
    try:
        await proxy.start()
        await wait_until_answering(proxy.bootstrap, 30)
        yield proxy
    finally:
        await proxy.close()
        process.kill()
        await process.wait()
