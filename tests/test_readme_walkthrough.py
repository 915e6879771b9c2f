"""The README's step-by-step and `relay api` blocks, run as written by a newcomer would:
no RELAY_* variable set beyond what the README says, the commands from the README itself.

The only change: the well-known ports (Kafka 9092, sandbox 8080, worker 9400) are replaced by
free ones, so that the test never collides with a broker or sandbox already running here.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from relay.broker import free_port
from relay.tools.stack import sandbox_stats
from tests.kafka_helpers import wait_for, wait_for_async
from tests.process_helpers import alive, descendants

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block_after(heading: str) -> list[str]:
    """The shell lines of the first ```sh block after `heading`, continuations joined."""
    start = README.index(heading)
    body = README[
        README.index("```sh\n", start) + 6 : README.index("```", README.index("```sh\n", start) + 6)
    ]
    return [line for line in body.replace("\\\n", " ").splitlines() if line.strip()]


class Ports:
    def __init__(self) -> None:
        self.kafka, self.sandbox, self.worker = free_port(), free_port(), free_port()

    def apply(self, line: str) -> str:
        line = re.sub(r"^relay broker\b", f"relay broker --port {self.kafka}", line)
        line = re.sub(r"^relay sandbox\b", f"relay sandbox --port {self.sandbox}", line)
        return line.replace("127.0.0.1:8080", f"127.0.0.1:{self.sandbox}").replace(
            "127.0.0.1:9400", f"127.0.0.1:{self.worker}"
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # The defaults the README's commands rely on, moved to this test's free ports.
        env["RELAY_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{self.kafka}"
        env["RELAY_HTTP_PORT"] = str(self.worker)
        return env


async def bash(line: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        line,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Background:
    """A long-running command of the README, its output collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []
        self.tasks = [
            asyncio.create_task(self._collect(s)) for s in (process.stdout, process.stderr)
        ]

    async def _collect(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        async for raw in stream:
            self.output.append(raw.decode(errors="replace"))

    def said(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in self.output)


async def start_terminal(script: str, ready: str, env: dict[str, str]) -> Background:
    """Run `script` as a terminal would (bash; its last command `exec`s in its place)."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    item = Background(process)
    await wait_for(lambda: item.said(ready) or process.returncode is not None, 60, ready)
    assert process.returncode is None, "".join(item.output)
    return item


async def interrupt(item: Background) -> None:
    """Ctrl-C: it stops, with everything it started."""
    family = descendants(item.process.pid)
    item.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(item.process.wait(), 60) in (0, 130), "".join(item.output)
    await wait_for(lambda: not any(alive(p) for p in family), 10, "its children gone")
    assert "Traceback" not in "".join(item.output)


@pytest.fixture
async def terminals() -> AsyncIterator[list[Background]]:
    started: list[Background] = []
    yield started
    for item in reversed(started):  # a failed test must not leave its processes behind
        if item.process.returncode is None:
            for pid in descendants(item.process.pid):
                os.kill(pid, signal.SIGKILL)
            item.process.kill()
            await item.process.wait()


def terminals_of(lines: list[str]) -> list[list[str]]:
    """The block's lines by terminal (`# terminal N` starts one), comments dropped."""
    result: list[list[str]] = []
    for line in lines:
        command = line.split("#")[0].strip()
        if re.search(r"# terminal \d", line):
            result.append([])
        if command and result:
            result[-1].append(command)
    return result


LONG_RUNNING = {"relay broker": "listening on", "relay sandbox": "listening on"}
LONG_RUNNING["relay run"] = "deliver: assigned"


async def test_the_readme_walkthrough_works_as_written(terminals: list[Background]) -> None:
    ports = Ports()
    env = ports.env()
    *servers, last = terminals_of(block_after("### Step by step"))
    assert [t[-1] for t in servers] == ["relay broker", "relay sandbox", "relay run"]
    for commands in servers:
        # What comes before the long-running command runs first in the same shell.
        *before, command = (ports.apply(c) for c in commands)
        script = "set -e\n" + "\n".join([*before, "exec " + command])
        ready = next(v for k, v in LONG_RUNNING.items() if command.startswith(k))
        terminals.append(await start_terminal(script, ready, env))
    worker_output = "".join(terminals[-1].output)
    assert "produced 2,000" in worker_output and "seed " in worker_output

    # Terminal 4, line by line, in one shell (the README exports a variable there).
    script = "set -e\n" + "\n".join(ports.apply(c) for c in last)
    code, out, err = await bash(script, env)
    assert code == 0, out + err
    assert '"status": "ready"' in out
    assert "dead letters" in out and "would send back" in out and "nothing sent" in out

    sandbox = f"http://127.0.0.1:{ports.sandbox}"
    produced = re.search(r"produced 2,000: ([\d,]+) valid, ([\d,]+) invalid", worker_output)
    assert produced, worker_output
    valid, invalid = (int(g.replace(",", "")) for g in produced.groups())

    async def delivered() -> bool:
        return bool((await sandbox_stats(sandbox))["conversions_accepted"] >= valid)

    await wait_for_async(delivered, 60, "the walk-through's events at the sandbox")

    async def all_dead_lettered() -> bool:
        code, out, _ = await bash("relay dlq show --json", {**env, "RELAY_API_BASE_URL": sandbox})
        return code == 0 and orjson.loads(out)["read"] == invalid

    await wait_for_async(all_dead_lettered, 60, "every invalid event in the DLQ")

    # The `relay api` block, the <id> placeholder filled from the create before it.
    api_env = dict(env)
    created_id = ""
    for line in block_after("### `relay api`"):
        line = ports.apply(line.split("  #")[0].strip())
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            api_env[name] = value
            continue
        code, out, err = await bash(line.replace("<id>", created_id), api_env)
        assert code == 0, (line, out, err)
        if "app-lists create" in line:
            created_id = orjson.loads(out)["id"]
        if "attribution check" in line:
            assert "attributed to X: CLICK" in out
    assert created_id

    # Without credentials against X: "not set", exit 2, nothing sent.
    code, out, err = await bash(
        "relay api app-lists list --account 18ce54d4x5t --json",
        {**api_env, "RELAY_API_BASE_URL": "https://ads-api.x.com"},
    )
    assert code == 2 and orjson.loads(out)["error"]["reason"] == "credentials_not_set"

    # Ctrl-C in each terminal stops it and everything it started.
    for item in reversed(terminals):
        await interrupt(item)
