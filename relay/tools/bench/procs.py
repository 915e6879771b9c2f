"""Child processes of a benchmark: started in their own session, measured from /proc, and all
killed when the scenario ends, however it ends (failure, Ctrl-C, or the interpreter exiting).

CPU time and peak RSS come from `/proc/<pid>/stat` and `/proc/<pid>/status` (Linux); where
/proc is missing they read as None and the results say so.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from relay.errors import RelayError
from relay.lifecycle import Closing

TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STOP_GRACE_S: Final = 10.0
_LIVE: set[int] = set()  # process group ids still running, for the atexit safety net


def _kill_leftovers() -> None:
    for pgid in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _LIVE.clear()


atexit.register(_kill_leftovers)


def _clean_environ() -> dict[str, str]:
    """This environment without RELAY_* settings: a scenario states every setting it uses."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds (user + system) and peak resident memory of one process tree; of that CPU,
    the system's part, and the minor page faults (memory first touched: fresh mappings)."""

    cpu_s: float
    peak_rss_bytes: int
    system_s: float = 0.0
    minor_faults: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu_s + other.cpu_s,
            self.peak_rss_bytes + other.peak_rss_bytes,
            self.system_s + other.system_s,
            self.minor_faults + other.minor_faults,
        )


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def _process_usage(pid: int) -> Usage:
    """One process's CPU (its own and its reaped children's), peak RSS and minor faults."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    # minflt, cminflt (fields 10 and 11: index 7 and 8 after the command name); utime,
    # stime, cutime, cstime (fields 14-17: index 11-14)
    ticks = sum(int(v) for v in fields[11:15])
    system_ticks = int(fields[12]) + int(fields[14])
    faults = int(fields[7]) + int(fields[8])
    return Usage(ticks / TICKS_PER_S, _peak_rss(pid), system_ticks / TICKS_PER_S, faults)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_usage(pid: int) -> Usage | None:
    """Usage of `pid` and its live descendants (and reaped children), peak RSS summed."""
    try:
        total = _process_usage(pid)
    except (OSError, ValueError, IndexError):
        return None
    pending = _children(pid)
    while pending:
        current = pending.pop()
        try:
            total += _process_usage(current)
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
        pending.extend(_children(current))
    return total


@dataclass
class Child:
    """One started process; `log` holds its stderr (and stdout unless piped)."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path | None
    ended_on_purpose: bool = False  # stopped or killed by the scenario, not by itself

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def usage(self) -> Usage | None:
        return tree_usage(self.pid) if self.running else None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after `grace_s`; the exit code."""
        self.ended_on_purpose = True
        if self.running:
            self.signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                self.signal(signal.SIGKILL)
                await self.process.wait()
        _LIVE.discard(self.pid)
        return self.process.returncode or 0

    async def kill(self) -> None:
        """SIGKILL: no drain, no commit."""
        self.ended_on_purpose = True
        self.signal(signal.SIGKILL)
        await self.process.wait()
        _LIVE.discard(self.pid)


class ProcessGroup(Closing):
    """Starts children and ends every one of them on exit, in reverse order.

    async with ProcessGroup(log_dir) as group:
        child = await group.start("sandbox", [...], env)
    """

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._logs: list[IO[bytes]] = []

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        pipe_stdout: bool = False,
    ) -> Child:
        log_path = self.log_dir / f"{name}-{len(self.children)}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipe_stdout else log,
            stderr=log,
            env={**_clean_environ(), **(env or {})},
            start_new_session=True,  # its own process group: killpg reaches its children
        )
        _LIVE.add(process.pid)
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    async def close(self) -> None:
        errors: list[BaseException] = []
        for child in reversed(self.children):
            try:
                await asyncio.shield(child.stop())
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
                child.signal(signal.SIGKILL)
        for log in self._logs:
            log.close()
        self.children.clear()
        if errors:
            raise RelayError(f"could not stop every benchmark process: {errors[0]!r}")
