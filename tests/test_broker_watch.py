"""The broker watch on a fake clock and a scripted probe: when it declares the broker lost,
how often it says so, when it gives up; and its probe against a real broker and a dead port."""

from __future__ import annotations

import asyncio
import logging

import pytest

from relay.broker import free_port
from relay.pipeline.broker_watch import BrokerLost, BrokerWatch, kafka_probe


class Script:
    def __init__(self) -> None:
        self.now = 0.0
        self.up = True
        self.backs = 0

    def clock(self) -> float:
        return self.now

    async def probe(self) -> bool:
        return self.up

    async def on_back(self) -> None:
        self.backs += 1


async def test_lost_reminded_back_and_given_up(caplog: pytest.LogCaptureFixture) -> None:
    script = Script()
    watch = BrokerWatch(
        "k:9092", 120, probe=script.probe, on_back=script.on_back, clock=script.clock
    )
    caplog.set_level(logging.INFO, logger="relay.pipeline.broker_watch")
    await watch.check()
    assert watch.connected and watch.readiness() is None
    script.up = False
    await watch.check()  # one failed probe is not a lost broker yet
    assert watch.connected
    for _ in range(100):  # 100 s of probes, one a second
        script.now += 1
        await watch.check()
    assert not watch.connected
    readiness = watch.readiness()
    assert readiness is not None and readiness[0] is False and "unreachable" in readiness[1]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unreachable" in m for m in messages) == 1
    assert sum("still unreachable" in m for m in messages) == 3  # every 30 s, not every second
    script.up = True
    await watch.check()
    assert watch.connected and script.backs == 1
    assert sum("is back" in m for m in [r.getMessage() for r in caplog.records]) == 1

    script.up = False
    start = script.now
    with pytest.raises(BrokerLost, match="RELAY_BROKER_LOST_EXIT_S=120"):
        for _ in range(200):
            script.now += 1
            await watch.check()
    assert script.now - start == pytest.approx(122)  # lost after the 2nd failed probe, then 120 s


async def test_probe_tells_a_broker_from_a_dead_port(kafka_bootstrap: str) -> None:
    assert await kafka_probe(kafka_bootstrap)()
    assert not await kafka_probe(f"127.0.0.1:{free_port()}", timeout_s=1)()


async def test_a_worker_may_start_before_its_broker(caplog: pytest.LogCaptureFixture) -> None:
    script = Script()
    script.up = False
    probes = 0

    async def probe() -> bool:
        nonlocal probes
        probes += 1
        script.now += 1
        return probes > 3

    caplog.set_level(logging.INFO, logger="relay.pipeline.broker_watch")
    stop = asyncio.Event()
    watch = BrokerWatch("k:9092", 10, probe=probe, clock=script.clock, interval_s=0.001)
    assert await watch.wait_until_reachable(stop)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not reachable yet" in m for m in messages) == 1 and "reachable" in messages[-1]

    never = BrokerWatch("k:9092", 10, probe=script.probe, clock=script.clock, interval_s=0.001)

    async def down_and_ticking() -> bool:
        script.now += 1
        return False

    never.probe = down_and_ticking
    with pytest.raises(BrokerLost, match="at start"):
        await never.wait_until_reachable(stop)
    stop.set()
    assert not await never.wait_until_reachable(stop)  # SIGTERM while waiting: just stop
