"""What stops delivery for more than one batch, and the probes that lift it:

- a credential X rejects (401): every lane of that credential waits; one probe per credential
  per interval, whichever lane sends it;
- a target X refuses (403/404 for an account, pixel or app): its events wait; one probe per
  target per interval;
- the circuit: when most recent requests to X failed for X's own reasons (5xx, timeouts,
  connection errors), all delivery pauses; one probe at a time, and a success closes it.

`admit` answers, before each request, whether it may go now and whether it is a probe.
Time is injected (monotonic seconds).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CIRCUIT_SAMPLE: Final = 20  # the last requests the circuit judges X by
CIRCUIT_MIN_SAMPLES: Final = 8


@dataclass(frozen=True, slots=True)
class Gate:
    go: bool
    probe: bool = False
    wait_s: float = 0.0  # when not go: when to ask again


@dataclass
class _Hold:
    since: float
    next_probe_at: float
    probing: bool = False
    code: str | None = None


@dataclass
class Circuit:
    """X's health from the outcome of the last `CIRCUIT_SAMPLE` requests."""

    failure_ratio: float
    probe_s: float
    clock: Clock = time.monotonic
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=CIRCUIT_SAMPLE))
    open_since: float | None = None
    next_probe_at: float = 0.0
    probing: bool = False
    opened: int = 0

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    @property
    def healthy(self) -> bool:
        """Enough recent answers, most of them good: a failing batch is at fault, not X."""
        if self.is_open or len(self.outcomes) < CIRCUIT_MIN_SAMPLES:
            return False
        return self.outcomes.count(False) / len(self.outcomes) < 0.5

    def record(self, ok: bool, *, probe: bool = False) -> None:
        if probe:
            self.probing = False
        self.outcomes.append(ok)
        now = self.clock()
        if ok:
            if self.is_open:
                log.warning("X answers again: the circuit closes, delivery resumes")
                self.open_since = None
                self.outcomes.clear()
            return
        if self.is_open:
            self.next_probe_at = now + self.probe_s
            return
        failures = self.outcomes.count(False)
        if (
            len(self.outcomes) >= CIRCUIT_MIN_SAMPLES
            and failures / len(self.outcomes) >= self.failure_ratio
        ):
            log.warning(
                "X fails %d of the last %d requests: the circuit opens, delivery pauses",
                failures,
                len(self.outcomes),
            )
            self.open_since = now
            self.opened += 1
            self.next_probe_at = now + self.probe_s

    def admit(self) -> Gate:
        """May a request go? While open: one probe at a time, every `probe_s`."""
        if not self.is_open:
            return Gate(True)
        now = self.clock()
        if self.probing or now < self.next_probe_at:
            return Gate(False, wait_s=max(self.next_probe_at - now, 0.05))
        return Gate(True, probe=True)

    def begin_probe(self) -> None:
        self.probing = True


@dataclass
class Holds:
    """Holds per credential (by name) and per target ((kind, target id))."""

    probe_s: float  # credentials
    clock: Clock = time.monotonic
    target_probe_s: float | None = None  # targets (default: probe_s)
    credentials: dict[str, _Hold] = field(default_factory=dict)
    targets: dict[tuple[str, str], _Hold] = field(default_factory=dict)

    def hold_credential(self, name: str) -> None:
        now = self.clock()
        hold = self.credentials.get(name)
        if hold is None:
            log.error(
                "X rejects the credentials %r (401); holding their deliveries, probing every %.0fs",
                name,
                self.probe_s,
            )
            self.credentials[name] = _Hold(now, now + self.probe_s)
        else:
            hold.probing = False
            hold.next_probe_at = now + self.probe_s

    def hold_target(self, kind: str, target: str, code: str | None) -> bool:
        """Hold a target; True when it was not held before (log and count it once)."""
        now = self.clock()
        hold = self.targets.get((kind, target))
        if hold is None:
            self.targets[(kind, target)] = _Hold(now, now + self.target_interval_s, code=code)
            return True
        hold.probing = False
        hold.next_probe_at = now + self.target_interval_s
        return False

    @property
    def target_interval_s(self) -> float:
        return self.probe_s if self.target_probe_s is None else self.target_probe_s

    def release_credential(self, name: str) -> None:
        if self.credentials.pop(name, None) is not None:
            log.warning("X accepts the credentials %r again; their deliveries resume", name)

    def release_target(self, kind: str, target: str) -> None:
        if self.targets.pop((kind, target), None) is not None:
            log.warning("X accepts %s target %s again; its deliveries resume", kind, target)

    def abandon_probe(self, credential: str, kind: str, target: str) -> None:
        """The probe's answer said nothing about the hold (X down): probe again later."""
        now = self.clock()
        for hold in self._holds(credential, kind, target):
            hold.probing = False
            hold.next_probe_at = now + (
                self.probe_s if hold in self.credentials.values() else self.target_interval_s
            )

    def cancel_probe(self, credential: str, kind: str, target: str) -> None:
        """The probe was withheld before it reached X: the next request may probe at once."""
        for hold in self._holds(credential, kind, target):
            hold.probing = False

    def target_held(self, kind: str, target: str) -> bool:
        return (kind, target) in self.targets

    def _holds(self, credential: str, kind: str, target: str) -> list[_Hold]:
        found = (self.credentials.get(credential), self.targets.get((kind, target)))
        return [hold for hold in found if hold is not None]

    def admit(self, credential: str, kind: str, target: str) -> Gate:
        """May a request of this credential to this target go now? At most one probe each."""
        now = self.clock()
        holds = self._holds(credential, kind, target)
        for hold in holds:
            if hold.probing or now < hold.next_probe_at:
                return Gate(False, wait_s=max(hold.next_probe_at - now, 0.05))
        return Gate(True, probe=bool(holds))

    def begin_probe(self, credential: str, kind: str, target: str) -> None:
        for hold in self._holds(credential, kind, target):
            hold.probing = True
