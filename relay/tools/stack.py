"""A local stack for the demo and the benchmarks: embedded broker + sandbox in a subprocess.

The sandbox runs in its own process so that it has a core of its own, as X would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from relay.broker import EmbeddedBroker, free_port
from relay.errors import RelayError
from relay.signals import die_with_parent, end_process

SANDBOX_START_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    sandbox_url: str


SANDBOX_ARGV: Final = ("-m", "relay", "--log-level", "WARNING", "sandbox", "--port")


@contextlib.asynccontextmanager
async def sandbox_process(env: Mapping[str, str] | None = None) -> AsyncIterator[str]:
    """`relay sandbox` on a free port in a child process; yields its base URL."""
    port = free_port()
    async with listening_process([*SANDBOX_ARGV, str(port)], {**os.environ, **(env or {})}):
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def listening_process(
    argv: Sequence[str], env: Mapping[str, str], *, cwd: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python *argv` in a child process, yielded once its first line on stdout says it is
    listening; ended (SIGTERM, then SIGKILL) on the way out."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        preexec_fn=die_with_parent,
    )
    try:
        if process.stdout is None:
            raise RelayError("sandbox process has no stdout")
        line = await asyncio.wait_for(process.stdout.readline(), SANDBOX_START_TIMEOUT_S)
        if b"listening" not in line:
            raise RelayError(f"sandbox did not start: {line.decode(errors='replace').strip()}")
        yield process
    finally:
        await end_process(process, 10)


@contextlib.asynccontextmanager
async def local_stack(env: Mapping[str, str] | None = None) -> AsyncIterator[Stack]:
    async with EmbeddedBroker() as broker, sandbox_process(env) as url:
        yield Stack(broker.bootstrap, url)


async def sandbox_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_sandbox/stats") as resp:
        resp.raise_for_status()
        data: dict[str, Any] = await resp.json()
        return data
