"""Ending child processes: SIGTERM first, SIGKILL for one that does not listen."""

from __future__ import annotations

import asyncio
import signal
import sys

from relay.signals import end_process

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


async def test_a_child_that_listens_ends_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec("sleep", "60")
    await end_process(process, 10)
    assert process.returncode == -signal.SIGTERM


async def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", IGNORES_SIGTERM, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
    await end_process(process, 0.2)
    assert process.returncode == -signal.SIGKILL


async def test_an_exited_child_is_left_as_it_is() -> None:
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()
    await end_process(process, 10)
    assert process.returncode == 0
