"""The shared start/close of long-lived components: one start, idempotent close."""

from __future__ import annotations

import pytest

from relay.errors import ClosedError
from relay.lifecycle import Closing, Lifecycle, State


class Recorder(Lifecycle):
    what = "recorder"

    def __init__(self, *, fail_open: bool = False) -> None:
        self.fail_open = fail_open
        self.calls: list[str] = []

    async def _open(self) -> None:
        self.calls.append("open")
        if self.fail_open:
            raise OSError("cannot open")

    async def _close(self) -> None:
        self.calls.append("close")

    def use(self) -> None:
        self._require_open()


async def test_starts_once_and_closes_once() -> None:
    component = Recorder()
    assert component.state.name == "NEW"
    with pytest.raises(ClosedError, match="recorder is not started"):
        component.use()
    async with component as entered:
        assert entered is component
        assert component.state.name == "OPEN"
        component.use()
        with pytest.raises(ClosedError, match="start it only once"):
            await component.start()
    await component.close()  # idempotent
    assert component.state is State.CLOSED
    assert component.calls == ["open", "close"]
    with pytest.raises(ClosedError, match="recorder is closed"):
        component.use()
    with pytest.raises(ClosedError):
        await component.start()


async def test_a_failed_start_releases_and_leaves_it_closed() -> None:
    component = Recorder(fail_open=True)
    with pytest.raises(OSError):
        await component.start()
    assert component.calls == ["open", "close"]
    assert component.state is State.CLOSED
    await component.close()
    assert component.calls == ["open", "close"]


async def test_closing_before_start_releases_nothing() -> None:
    component = Recorder()
    await component.close()
    assert component.state is State.CLOSED
    assert component.calls == []


class Counted(Closing):
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


async def test_closing_closes_on_the_way_out_of_an_error() -> None:
    resource = Counted()
    with pytest.raises(ValueError):
        async with resource:
            raise ValueError("inside")
    assert resource.closed == 1
