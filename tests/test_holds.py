"""Holds and the circuit on a fake clock: one probe per credential or target per interval."""

from __future__ import annotations

from relay.pipeline.holds import CIRCUIT_MIN_SAMPLES, Circuit, Holds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_rejected_credential_lets_one_probe_through_per_interval() -> None:
    clock = FakeClock()
    holds = Holds(probe_s=30, clock=clock)
    holds.hold_credential("agency")
    assert not holds.admit("agency", "web", "px1").go
    assert holds.admit("default", "web", "px1").go  # other credentials keep flowing
    clock.now += 30
    gate = holds.admit("agency", "app", "333903271")
    assert gate.go and gate.probe
    holds.begin_probe("agency", "app", "333903271")
    assert not holds.admit("agency", "web", "px2").go  # one probe at a time, any lane
    holds.hold_credential("agency")  # the probe got a 401 again
    assert not holds.admit("agency", "web", "px2").go
    clock.now += 30
    assert holds.admit("agency", "web", "px2").probe
    holds.release_credential("agency")
    assert holds.admit("agency", "web", "px2") == holds.admit("default", "web", "px2")


def test_a_refused_target_waits_for_its_probe() -> None:
    clock = FakeClock()
    holds = Holds(probe_s=10, clock=clock)
    assert holds.hold_target("web", "s7g8h", "ACCOUNT_NOT_FOUND")
    assert not holds.hold_target("web", "s7g8h", "ACCOUNT_NOT_FOUND")  # counted once
    assert holds.target_held("web", "s7g8h") and not holds.admit("default", "web", "s7g8h").go
    assert holds.admit("default", "web", "o8z6j").go
    clock.now += 10
    assert holds.admit("default", "web", "s7g8h").probe


def test_the_circuit_opens_when_most_requests_fail_probes_and_closes() -> None:
    clock = FakeClock()
    circuit = Circuit(failure_ratio=0.8, probe_s=5, clock=clock)
    for _ in range(CIRCUIT_MIN_SAMPLES - 1):
        circuit.record(False)
    assert not circuit.is_open  # too few answers to judge X
    circuit.record(False)
    assert circuit.is_open and not circuit.healthy
    assert not circuit.admit().go
    clock.now += 5
    gate = circuit.admit()
    assert gate.go and gate.probe
    circuit.begin_probe()
    assert not circuit.admit().go  # one probe at a time
    circuit.record(False, probe=True)
    assert circuit.is_open and not circuit.admit().go
    clock.now += 5
    circuit.begin_probe()
    circuit.record(True, probe=True)
    assert not circuit.is_open and circuit.admit().go


def test_mixed_answers_keep_the_circuit_closed_and_x_healthy() -> None:
    circuit = Circuit(failure_ratio=0.8, probe_s=5, clock=FakeClock())
    for i in range(40):
        circuit.record(i % 3 != 0)  # a third fail
    assert not circuit.is_open and circuit.healthy
