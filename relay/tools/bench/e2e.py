"""The relay end to end as a user runs it: `relay run` in its own process, events in, the
sandbox's journal out.

The relay first delivers a small warm-up (so that both consumer groups have joined: a fixed
wait that is not throughput, reported apart as the time to the first delivery). Then the
measured events are written, encoded into producer batches beforehand: they appear as fast as
the broker takes them, so the relay drains a backlog, as the floor does, and the bench does not
encode them on the same cores meanwhile. The relay's CPU (user + system of its process tree,
from /proc) is counted from that moment until the sandbox accepted the last of them.
Throughput is the steady state between the first and the last measured event the sandbox
accepted.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from relay.errors import RelayError
from relay.tools.bench.accounting import error_classes, received_s
from relay.tools.bench.context import StallGuard
from relay.tools.bench.events import Event, Kind
from relay.tools.bench.kafka_io import Backlog, fill, read_topic
from relay.tools.bench.procs import Child, Usage
from relay.tools.bench.stack import Stack, accepted

FIRST_DELIVERY_TIMEOUT_S: Final = 120.0
DLQ_CHECK_S: Final = 5.0


class DeadLettered(RelayError):
    """The relay dead-letters what the scenario needs delivered."""


async def refuse_dead_lettered(stack: Stack, prefix: str, missing: int) -> None:
    """DeadLettered when at least `missing` records are in the DLQ: waiting is useless."""
    records = await read_topic(stack.bootstrap, f"{prefix}.dlq", timeout_s=10)
    if records and len(records) >= missing:
        classes = error_classes(records)
        raise DeadLettered(f"the relay dead-letters instead of delivering: {classes}")


@dataclass(frozen=True)
class EndToEnd:
    events: int
    steady_per_s: float | None
    window_s: float
    cpu_s: float | None
    peak_rss_bytes: int | None
    first_delivery_s: float
    # CPU seconds of the processes beside the relay over the same span (the sandbox, the
    # broker, this bench): what the cores gave them, not the relay.
    neighbours_cpu_s: Mapping[str, float] = field(default_factory=dict)
    # Of the relay's CPU, the kernel's part, and the minor page faults behind much of it.
    system_s: float | None = None
    minor_faults: int | None = None

    def machine_ceiling_per_s(self) -> float | None:
        """Events/s at which the relay and its neighbours would use every core: no relay
        on this machine goes faster, whatever its own CPU per event."""
        if self.cpu_s is None or not self.events:
            return None
        total = self.cpu_s + sum(self.neighbours_cpu_s.values())
        return (os.cpu_count() or 1) * self.events / total if total > 0 else None

    @property
    def cpu_us_per_event(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s / self.events * 1e6

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "per_s": None if self.steady_per_s is None else round(self.steady_per_s, 1),
            "steady_window_s": round(self.window_s, 3),
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
            "cpu_s_per_1000": _round(
                None if self.cpu_s is None else self.cpu_s / self.events * 1e3
            ),
            "cpu_us_per_event": _round(self.cpu_us_per_event),
            "system_cpu_us_per_event": _round(
                None if self.system_s is None else self.system_s / self.events * 1e6
            ),
            "page_faults_per_event": _round(
                None if self.minor_faults is None else self.minor_faults / self.events
            ),
            "peak_rss_mb": _round(
                None if self.peak_rss_bytes is None else self.peak_rss_bytes / 2**20
            ),
            "first_delivery_s": round(self.first_delivery_s, 2),
            "neighbours_cpu_us_per_event": {
                name: round(cpu / self.events * 1e6, 1)
                for name, cpu in self.neighbours_cpu_s.items()
            },
            "machine_ceiling_per_s": _round(self.machine_ceiling_per_s(), 1),
        }


@dataclass
class Relays:
    """The `relay run` processes of one measurement: one (both stages), or two
    (`--stage ingest` and `--stage deliver`); CPU and peak RSS are their sums."""

    children: list[Child]

    @property
    def running(self) -> bool:
        return all(c.running for c in self.children)

    def usage(self) -> Usage | None:
        usages = [c.usage() for c in self.children]
        total = Usage(0.0, 0)
        for usage in usages:
            if usage is None:
                return None
            total += usage
        return total

    async def stop(self) -> None:
        for child in self.children:
            await child.stop()


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def input_spec(prefix: str, kind: Kind) -> tuple[str, str]:
    """(input topic, RELAY_INPUTS) for one feed of `kind`."""
    topic = f"{prefix}.input.{kind}"
    return topic, f"{topic}={kind}"


def steady_rate(entries: Sequence[dict[str, Any]]) -> tuple[float | None, float]:
    """(events/s between the first and the last acceptance, that window in seconds): events
    accepted in the first instant are not counted, they start the clock."""
    if len(entries) < 2:
        return None, 0.0
    times = sorted(received_s(e) for e in entries)
    window = times[-1] - times[0]
    if window <= 0:
        return None, 0.0
    first = sum(1 for t in times if t == times[0])
    return (len(times) - first) / window, window


async def start_and_warm(
    stack: Stack,
    prefix: str,
    kind: Kind,
    warmup: Sequence[Event],
    extra_env: Mapping[str, str] | None = None,
    *,
    split_stages: bool = False,
) -> tuple[Relays, float]:
    """`relay run` started on a warm-up backlog; (the relays, seconds to the first delivery)
    once the whole warm-up is delivered. `split_stages`: the stages as two processes."""
    topic, inputs = input_spec(prefix, kind)
    await fill(stack.bootstrap, topic, warmup)
    base = accepted(await stack.client.stats(), kind)
    started = time.monotonic()
    stages = ("ingest", "deliver") if split_stages else ("all",)
    relay = Relays([await stack.start_relay(prefix, inputs, extra_env, stage=s) for s in stages])
    first: list[float] = []
    checked = [time.monotonic()]

    stall = StallGuard("the warm-up", FIRST_DELIVERY_TIMEOUT_S / 2)

    async def warmed() -> bool:
        done = accepted(await stack.client.stats(), kind) - base
        if done:
            stall.seen(done)
        if done and not first:
            first.append(time.monotonic() - started)
            stack.run.say(f"first delivery {first[0]:.1f}s after start")
        if done < len(warmup) and time.monotonic() - checked[0] > DLQ_CHECK_S:
            checked[0] = time.monotonic()
            await refuse_dead_lettered(stack, prefix, len(warmup) - done)
        return done >= len(warmup)

    await stack.run.wait_for(
        warmed,
        "the warm-up to be delivered",
        timeout_s=FIRST_DELIVERY_TIMEOUT_S,
        poll_s=0.05,
        alive=stack.check_alive,
    )
    return relay, first[0]


async def measure(
    stack: Stack,
    prefix: str,
    kind: Kind,
    events: Sequence[Event],
    warmup: Sequence[Event],
    extra_env: Mapping[str, str] | None = None,
    *,
    keep_running: bool = False,
    split_stages: bool = False,
) -> tuple[EndToEnd, Relays]:
    """One measured run; the relays are stopped afterwards unless `keep_running`."""
    relay, first_delivery_s = await start_and_warm(
        stack, prefix, kind, warmup, extra_env, split_stages=split_stages
    )
    topic, _ = input_spec(prefix, kind)
    journal_kind = "app" if kind == "mobile" else "web"
    backlog = await Backlog.build(stack.bootstrap, topic, events)
    base = accepted(await stack.client.stats(), kind)
    before, neighbours_before = relay.usage(), neighbours_cpu_s(stack)
    stack.run.say(f"warm; writing {len(events):,} events")
    await backlog.write()
    last_report = [time.monotonic()]
    stall = StallGuard("the measured events")

    async def delivered() -> bool:
        done = accepted(await stack.client.stats(), kind) - base
        stall.seen(done)
        if time.monotonic() - last_report[0] > 5:
            last_report[0] = time.monotonic()
            stack.run.say(f"{done:,}/{len(events):,} accepted")
        return done >= len(events)

    await stack.run.wait_for(delivered, "every event to be accepted", alive=stack.check_alive)
    after, neighbours_after = relay.usage(), neighbours_cpu_s(stack)
    if not keep_running:
        await relay.stop()
    entries = (await stack.client.journal(journal_kind))[base:]
    rate, window = steady_rate(entries)
    # What the relay used over the measured span; its peak RSS is the run's so far.
    cpu, system, faults = (
        (
            after.cpu_s - before.cpu_s,
            after.system_s - before.system_s,
            after.minor_faults - before.minor_faults,
        )
        if after and before
        else (None, None, None)
    )
    peak = after.peak_rss_bytes if after else None
    neighbours = {
        name: neighbours_after[name] - cpu_s
        for name, cpu_s in neighbours_before.items()
        if name in neighbours_after
    }
    measured = EndToEnd(
        len(events), rate, window, cpu, peak, first_delivery_s, neighbours, system, faults
    )
    return measured, relay


def neighbours_cpu_s(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the processes the relay shares the cores with."""
    usage = {"sandbox": stack.sandbox.usage(), "broker": stack.broker.usage()}
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {name: u.cpu_s for name, u in usage.items() if u is not None}
    cpu["bench"] = own.ru_utime + own.ru_stime
    return cpu
