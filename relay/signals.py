"""Stopping commands on SIGTERM and SIGINT, and child processes that never outlive them.

`run_until_signalled` runs a command's coroutine and cancels it on the first SIGTERM or
SIGINT: every `async with` on the way out closes what it started (brokers, sandboxes,
workers). `die_with_parent` makes a child process get SIGTERM when its parent dies, even by
SIGKILL (Linux), so that no broker or sandbox is left holding a port; `end_process` ends
one: SIGTERM, then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
from collections.abc import Coroutine
from typing import Any, Final

PR_SET_PDEATHSIG: Final = 1
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


def die_with_parent() -> None:
    """A `preexec_fn`: the child receives SIGTERM when the parent exits (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_until_signalled(main: Coroutine[Any, Any, int]) -> int:
    """`asyncio.run(main)`, cancelled by SIGTERM/SIGINT; then the exit code is 128 + signal."""

    async def guarded() -> int:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - asyncio.run always runs a task
            raise RuntimeError("run_until_signalled needs a running task")
        received: list[int] = []
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if not received:
                received.append(signum)
                task.cancel()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await main
        except asyncio.CancelledError:
            if not received:
                raise
            return 128 + received[0]
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    return asyncio.run(guarded())


async def end_process(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM, and SIGKILL when it has not exited within `timeout_s`; returns once it exited."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
