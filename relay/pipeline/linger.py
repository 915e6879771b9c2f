"""How long a web batch waits to fill: `RELAY_LINGER_S`, or longer while the deliver stage
is behind.

With thousands of accounts each lane gets an event now and then, so a fixed linger sends
requests of one or two events, and a request costs far more CPU than an event (signing,
HTTP, the answer): delivery crawls at a few hundred requests a second. While records wait
unread on the stage's partitions (a backlog: those events wait anyway), a batch waits until
it is full or `BACKLOG_LINGER_S`, and the stage reads ahead, so that the same CPU carries
many events per request; once the buffer is full (the partitions pause) or the backlog is
read, the set linger is back and every lane is woken: what the lanes hold goes in batches
as large as the buffer allows.
"""

from __future__ import annotations

from typing import Final

from aiokafka import TopicPartition

BACKLOG_LINGER_S: Final = 30.0
BACKLOG_MIN_RECORDS: Final = 5_000  # unread records that make a backlog


class Linger:
    """The linger of web batches now, from the unread records of the stage's partitions."""

    def __init__(self, configured_s: float):
        self.configured_s = configured_s
        self._unread: dict[TopicPartition, int] = {}
        self.backlog = False

    @property
    def now_s(self) -> float:
        return max(self.configured_s, BACKLOG_LINGER_S) if self.backlog else self.configured_s

    def observe(self, tp: TopicPartition, unread: int) -> None:
        """`unread` records follow the last one read of `tp` (high-water mark - position)."""
        self._unread[tp] = max(unread, 0)

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._unread.pop(tp, None)

    def update(self, *, buffer_has_room: bool) -> bool:
        """Decide again; True when the linger just got shorter (lanes must look again)."""
        was = self.backlog
        self.backlog = buffer_has_room and sum(self._unread.values()) >= BACKLOG_MIN_RECORDS
        return was and not self.backlog


def opened_at(now: float, appended_ms: int, epoch_to_clock: float, linger_s: float) -> float:
    """When a batch opened by an event appended at `appended_ms` (epoch ms, -1 unknown)
    starts to linger, on the clock of `now` (`epoch_to_clock`: that clock minus epoch
    seconds): at its append, so that the time it spent in ingest and on the outbound topic
    counts as waiting. An event older than `linger_s` is behind already: its batch lingers
    from now, so that a relay catching up sends full requests, not one per fetch (which
    costs it more CPU and puts it further behind). Now, too, for a producer's clock ahead of
    this one."""
    appended = appended_ms * 0.001 + epoch_to_clock
    if appended_ms < 0 or appended >= now or appended < now - linger_s:
        return now
    return appended
