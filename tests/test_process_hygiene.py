"""`relay broker`, `relay sandbox` and `relay demo` as real processes: SIGTERM and SIGINT
stop everything they started and free their ports; a busy port is one line and exit 1."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from relay.broker import free_port, port_in_use
from tests.kafka_helpers import wait_for
from tests.process_helpers import alive, descendants

START_S = 60


async def relay(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(stream: asyncio.StreamReader | None, pattern: str) -> str:
    """Lines of `stream` up to the first matching `pattern`; that line."""
    if stream is None:
        raise AssertionError("no stream")
    while True:
        line = (await asyncio.wait_for(stream.readline(), START_S)).decode()
        if not line:
            raise AssertionError(f"stream ended before {pattern!r}")
        if re.search(pattern, line):
            return line


async def stop_and_check(process: asyncio.subprocess.Process, signum: int, ports: list[int]) -> int:
    """Signal `process`; assert that it and all its descendants are gone and the ports free."""
    family = descendants(process.pid)
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    await wait_for(lambda: not any(alive(p) for p in family), 10, "every child gone")
    for port in ports:
        assert not port_in_use("127.0.0.1", port), port
    assert b"Traceback" not in err, err.decode()
    assert process.returncode is not None
    return process.returncode


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
async def started() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    processes: list[asyncio.subprocess.Process] = []
    yield processes
    for process in processes:  # a failed test must not leave its processes behind
        if process.returncode is None:
            for pid in descendants(process.pid):
                with __import__("contextlib").suppress(ProcessLookupError):
                    __import__("os").kill(pid, signal.SIGKILL)
            process.kill()
            await process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_broker_stops_with_its_child(
    signum: int, started: list[asyncio.subprocess.Process]
) -> None:
    port = free_port()
    process = await relay("broker", "--port", str(port))
    started.append(process)
    await read_until(process.stdout, "listening on")
    assert descendants(process.pid), "the broker runs as a child process"
    assert await stop_and_check(process, signum, [port]) == 128 + signum


async def test_sandbox_stops_on_sigterm(started: list[asyncio.subprocess.Process]) -> None:
    port = free_port()
    process = await relay("sandbox", "--port", str(port))
    started.append(process)
    await read_until(process.stdout, "listening on")
    assert await stop_and_check(process, signal.SIGTERM, [port]) == 0


@pytest.mark.parametrize("command", ["broker", "sandbox"])
async def test_a_busy_port_is_one_line_and_exit_1(
    command: str, busy_port: int, started: list[asyncio.subprocess.Process]
) -> None:
    process = await relay(command, "--port", str(busy_port))
    started.append(process)
    out, err = await asyncio.wait_for(process.communicate(), START_S)
    assert process.returncode == 1
    assert b"listening" not in out
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert str(busy_port) in lines[0] and "in use" in lines[0]


async def test_demo_stops_everything_on_sigterm(started: list[asyncio.subprocess.Process]) -> None:
    process = await relay("demo", "--count", "200000", "--timeout", "120")
    started.append(process)
    line = await read_until(process.stderr, r"broker \S+, sandbox \S+")
    ports = [int(p) for p in re.findall(r":(\d+)", line)]
    assert len(ports) == 2, line
    await wait_for(lambda: len(descendants(process.pid)) >= 2, 30, "broker and sandbox running")
    code = await stop_and_check(process, signal.SIGTERM, ports)
    assert code == 128 + signal.SIGTERM
