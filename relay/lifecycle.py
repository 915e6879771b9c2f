"""Start and close for the relay's long-lived components, written once.

A `Lifecycle` component is used as `async with component:`; it starts once, and closing
is idempotent. Its state is explicit (`State`): using it in the wrong state raises
`ClosedError`, and a start that fails undoes what it began and leaves the component closed.
Subclasses write only `_open` and `_close`.

`Closing` is the smaller half, for what is usable once built: `async with` only closes it.
"""

from __future__ import annotations

from enum import Enum
from types import TracebackType
from typing import ClassVar, Self

from relay.errors import ClosedError


class State(Enum):
    NEW = "not started"
    OPEN = "open"
    CLOSED = "closed"


class Closing:
    """`async with` closes it on the way out."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Lifecycle(Closing):
    """Not started, open, closed: `start` once, `close` any number of times."""

    what: ClassVar[str]  # names the component in misuse errors
    _state: State = State.NEW

    @property
    def state(self) -> State:
        return self._state

    async def _open(self) -> None:
        """Acquire the resources; on an error, `_close` runs to release what was acquired."""

    async def _close(self) -> None:
        """Release the resources; runs once, also after a partial `_open`."""

    def _require_open(self, why: str = "") -> None:
        if self._state is not State.OPEN:
            raise ClosedError(f"{self.what} is {self._state.value}{why}")

    async def start(self) -> None:
        if self._state is not State.NEW:
            raise ClosedError(f"{self.what} is {self._state.value}: start it only once")
        try:
            await self._open()
        except BaseException:
            self._state = State.CLOSED
            await self._close()
            raise
        self._state = State.OPEN

    async def close(self) -> None:
        was_open = self._state is State.OPEN
        self._state = State.CLOSED
        if was_open:
            await self._close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self
