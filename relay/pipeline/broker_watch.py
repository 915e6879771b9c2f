"""Watching the Kafka broker from a running worker.

aiokafka retries a lost broker by itself, logging every failed attempt (thousands of lines a
minute) while the worker looks healthy. The watch probes the bootstrap servers itself with an
ApiVersions request over a plain socket (no client, so no log lines of its own; a hung broker
that accepts connections but answers nothing counts as gone) and turns a lost broker into:

- one WARNING when the broker is lost, a reminder every `reminder_s`, one INFO when it is back;
- `readiness()` false while it is gone (`/readyz` 503 with the reason);
- aiokafka's own loggers silenced while it is gone (`relay.observability.logs`);
- `BrokerLost` raised from `run` after `lost_exit_s` without a broker: the worker stops and
  exits with `EXIT_BROKER_LOST`, and Kubernetes restarts it.

When the broker returns, aiokafka reconnects by itself; `on_back` (topic creation: a
restarted embedded broker is empty) runs first. A broker that returns empty (the embedded
one, restarted) does not know the positions the worker holds: restart the worker with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Final

from relay.errors import BrokerError
from relay.observability.logs import quiet_kafka_client

log = logging.getLogger(__name__)

EXIT_BROKER_LOST: Final = 75  # EX_TEMPFAIL: try again later
PROBE_INTERVAL_S: Final = 1.0
PROBE_TIMEOUT_S: Final = 2.0
LOST_AFTER_FAILED_PROBES: Final = 2  # one refused connect may be a broker restarting
REMINDER_S: Final = 30.0

Probe = Callable[[], Awaitable[bool]]


class BrokerLost(BrokerError):
    """No broker for longer than `RELAY_BROKER_LOST_EXIT_S`."""


async def close_without_broker(closing: Awaitable[None], timeout_s: float = 2.0) -> None:
    """Close a Kafka client while the broker is gone: bounded (it would wait for the broker),
    and the CancelledError of its own cancelled internals is not ours to raise."""
    task = asyncio.current_task()
    try:
        await asyncio.wait_for(closing, timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        if task is not None and task.cancelling():
            raise


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    addresses = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        addresses.append((host.strip("[]") or "127.0.0.1", int(port or 9092)))
    return addresses


# ApiVersions v0, correlation id 1, client id "relay-watch": the cheapest request a broker
# answers, before any authentication.
API_VERSIONS_REQUEST: Final = struct.pack(">hhih", 18, 0, 1, len(b"relay-watch")) + b"relay-watch"


async def _answers(
    host: str, port: int, timeout_s: float, tls: ssl.SSLContext | None = None
) -> bool:
    """A broker that accepts the connection (the TLS handshake too, with the clients' own
    context) and answers is there; refused, or silent until the timeout (a hung broker), is
    not."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls), timeout_s
        )
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(struct.pack(">i", len(API_VERSIONS_REQUEST)) + API_VERSIONS_REQUEST)
        await writer.drain()
        await asyncio.wait_for(reader.read(8), timeout_s)
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def kafka_probe(
    bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S, tls: ssl.SSLContext | None = None
) -> Probe:
    """True when any bootstrap server answers."""
    addresses = bootstrap_addresses(bootstrap)

    async def probe() -> bool:
        for host, port in addresses:
            if await _answers(host, port, timeout_s, tls):
                return True
        return False

    return probe


class BrokerWatch:
    def __init__(
        self,
        bootstrap: str,
        lost_exit_s: float,
        *,
        probe: Probe | None = None,
        on_back: Callable[[], Awaitable[None]] | None = None,
        interval_s: float = PROBE_INTERVAL_S,
        reminder_s: float = REMINDER_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.bootstrap = bootstrap
        self.lost_exit_s = lost_exit_s
        self.probe = probe or kafka_probe(bootstrap)
        self.on_back = on_back
        self.interval_s = interval_s
        self.reminder_s = reminder_s
        self.clock = clock
        self.lost_since: float | None = None
        self._failed = 0
        self._reminded = 0.0

    @property
    def connected(self) -> bool:
        return self.lost_since is None

    def readiness(self) -> tuple[bool, str] | None:
        """(False, reason) while the broker is gone, else None (no opinion)."""
        if self.lost_since is None:
            return None
        gone = self.clock() - self.lost_since
        return False, f"Kafka at {self.bootstrap} unreachable for {gone:.0f}s"

    async def check(self) -> None:
        """One probe and what follows from it; raises `BrokerLost` when gone too long."""
        now = self.clock()
        if await self.probe():
            self._failed = 0
            if self.lost_since is not None:
                if self.on_back is not None:
                    try:
                        await self.on_back()
                    except Exception as exc:  # reachable but not serving yet: next probe
                        log.debug("broker back but not ready: %s", exc)
                        return
                log.info("Kafka at %s is back after %.0fs", self.bootstrap, now - self.lost_since)
                self.lost_since = None
                quiet_kafka_client(False)
            return
        self._failed += 1
        if self.lost_since is None:
            if self._failed < LOST_AFTER_FAILED_PROBES:
                return
            self.lost_since = self._reminded = now
            quiet_kafka_client(True)
            log.warning(
                "Kafka at %s is unreachable: not ready, retrying; the worker exits after %.0fs "
                "(RELAY_BROKER_LOST_EXIT_S)",
                self.bootstrap,
                self.lost_exit_s,
            )
            return
        gone = now - self.lost_since
        if gone >= self.lost_exit_s:
            raise BrokerLost(
                f"Kafka at {self.bootstrap} unreachable for {gone:.0f}s "
                f"(RELAY_BROKER_LOST_EXIT_S={self.lost_exit_s:g}); exiting"
            )
        if now - self._reminded >= self.reminder_s:
            self._reminded = now
            log.warning("Kafka at %s still unreachable after %.0fs", self.bootstrap, gone)

    async def wait_until_reachable(self, stop: asyncio.Event) -> bool:
        """At start: wait for the broker up to `lost_exit_s` (one line if it is not there
        yet), so that a worker may start before its broker. False when `stop` came first."""
        started = self.clock()
        said = False
        while not await self.probe():
            waited = self.clock() - started
            if waited >= self.lost_exit_s:
                raise BrokerLost(
                    f"Kafka at {self.bootstrap} unreachable for {waited:.0f}s at start "
                    f"(RELAY_BROKER_LOST_EXIT_S={self.lost_exit_s:g}); exiting"
                )
            if not said:
                log.warning(
                    "Kafka at %s is not reachable yet; waiting up to %.0fs",
                    self.bootstrap,
                    self.lost_exit_s,
                )
                said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set():
                return False
        if said:
            log.info("Kafka at %s is reachable", self.bootstrap)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
