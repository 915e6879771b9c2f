"""A benchmark stack: the embedded broker, the sandbox and any number of `relay run`, each in
its own process, all on loopback, all ended with the scenario."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from relay.broker import broker_command, free_port, wait_until_answering
from relay.errors import RelayError
from relay.tools.bench.context import BENCH_TOKEN_LIMIT, Run
from relay.tools.bench.procs import Child, ProcessGroup

HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 30.0
JOURNAL_PAGE: Final = 20_000


class ProcessDied(RelayError):
    """A process the scenario needs exited by itself."""


@dataclass
class SandboxClient:
    """The sandbox's control endpoints."""

    url: str
    session: aiohttp.ClientSession

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.url + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._json("GET", "/_sandbox/stats")
        return data

    async def set_faults(self, faults: Mapping[str, Any]) -> None:
        await self._json("POST", "/_sandbox/faults", dict(faults))

    async def clear_faults(self) -> None:
        await self._json("DELETE", "/_sandbox/faults")

    async def early_requests(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._json("GET", "/_sandbox/early-requests")
        return data

    async def reset(self) -> None:
        await self._json("POST", "/_sandbox/reset")

    async def journal(self, kind: str) -> list[dict[str, Any]]:
        """Every retained journal entry of `kind` (web|app), oldest first, in pages."""
        entries: list[dict[str, Any]] = []
        while True:
            page = await self._json(
                "GET", f"/_sandbox/journal?kind={kind}&offset={len(entries)}&limit={JOURNAL_PAGE}"
            )
            entries.extend(page["conversions"])
            if not page["conversions"] or len(entries) >= page["total"]:
                return entries


def accepted(stats: Mapping[str, Any], kind: str) -> int:
    """Conversions the sandbox accepted (web: duplicates included)."""
    return int(stats["app_conversions_accepted" if kind == "mobile" else "conversions_accepted"])


def responses(stats: Mapping[str, Any], status: int) -> int:
    """Answers of `status` on X's routes, injected ones included."""
    count = sum(int(by.get(str(status), 0)) for by in stats["requests"].values())
    faults = stats.get("faults", {})
    if status == 429:
        count += int(faults.get("storm_429", 0))
    return count + int(faults.get(f"error_{status}", 0))


@dataclass
class Stack:
    run: Run
    group: ProcessGroup
    bootstrap: str
    broker: Child
    sandbox: Child
    sandbox_url: str
    config: Path
    client: SandboxClient
    relays: list[Child] = field(default_factory=list)

    def relay_env(
        self, prefix: str, inputs: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        return {
            "RELAY_KAFKA_BOOTSTRAP": self.bootstrap,
            "RELAY_API_BASE_URL": self.sandbox_url,
            "RELAY_CONFIG": str(self.config),
            "RELAY_TOPIC_PREFIX": prefix,
            "RELAY_INPUTS": inputs,
            "RELAY_HTTP_PORT": str(free_port()),
            **self.run.relay_env,
            **(extra or {}),
        }

    async def start_relay(
        self,
        prefix: str,
        inputs: str,
        extra: Mapping[str, str] | None = None,
        *,
        stage: str = "all",
    ) -> Child:
        """`relay run` in its own process."""
        argv = [sys.executable, "-m", "relay", "run"]
        if stage != "all":
            argv += ["--stage", stage]
        child = await self.group.start("relay", argv, self.relay_env(prefix, inputs, extra))
        self.relays.append(child)
        return child

    def check_alive(self, *children: Child) -> None:
        for child in children or (self.broker, self.sandbox, *self.relays):
            if not child.running and not child.ended_on_purpose:
                tail = child.log_tail()
                raise ProcessDied(
                    f"{child.name} (pid {child.pid}) exited with code "
                    f"{child.process.returncode}" + (f":\n{tail}" if tail else "")
                )


async def _start_broker(group: ProcessGroup) -> tuple[Child, str]:
    port = free_port(HOST)
    child = await group.start("broker", broker_command(HOST, port), {"RUST_LOG": "warn"})
    bootstrap = f"{HOST}:{port}"
    await wait_until_answering(bootstrap, START_TIMEOUT_S)
    return child, bootstrap


async def _start_sandbox(
    group: ProcessGroup, config: Path, env: Mapping[str, str], args: Sequence[str]
) -> tuple[Child, str]:
    port = free_port(HOST)
    argv = [sys.executable, "-m", "relay", "--log-level", "WARNING", "sandbox"]
    argv += ["--host", HOST, "--port", str(port), "--config", str(config), *args]
    child = await group.start("sandbox", argv, env, pipe_stdout=True)
    stdout = child.process.stdout
    if stdout is None:
        raise RelayError("sandbox process has no stdout")
    try:
        line = await asyncio.wait_for(stdout.readline(), START_TIMEOUT_S)
    except TimeoutError:
        line = b""
    if b"listening" not in line:
        raise ProcessDied(f"sandbox did not start: {line!r}\n{child.log_tail()}")
    return child, f"http://{HOST}:{port}"


@contextlib.asynccontextmanager
async def open_stack(
    run: Run,
    config: Path,
    *,
    sandbox_env: Mapping[str, str] | None = None,
    sandbox_args: Sequence[str] = (),
) -> AsyncIterator[Stack]:
    """Broker + sandbox (budgets from `sandbox_env`, else out of the way); relays on demand.

    Every process ends when the block exits, whatever the reason."""
    env = {
        "RELAY_ACCOUNT_LIMIT": run.relay_env.get("RELAY_ACCOUNT_LIMIT", ""),
        "RELAY_ACCOUNT_WINDOW_S": run.relay_env.get("RELAY_ACCOUNT_WINDOW_S", ""),
        "RELAY_SANDBOX_TOKEN_LIMIT": str(BENCH_TOKEN_LIMIT),
        **(sandbox_env or {}),
    }
    async with ProcessGroup(run.work_dir) as group, aiohttp.ClientSession() as session:
        run.say("starting the broker and the sandbox")
        broker, bootstrap = await _start_broker(group)
        sandbox, url = await _start_sandbox(
            group, config, {k: v for k, v in env.items() if v}, sandbox_args
        )
        yield Stack(
            run, group, bootstrap, broker, sandbox, url, config, SandboxClient(url, session)
        )
