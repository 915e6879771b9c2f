"""`relay run` runs on uvloop's event loop by default, on asyncio's with
RELAY_EVENT_LOOP=asyncio, and on asyncio's when uvloop cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from relay.eventloop import loop_factory


def run_without_broker(**env: str) -> str:
    """What `relay run --stage ingest` logs before it gives up on an unreachable broker."""
    out = subprocess.run(
        [sys.executable, "-m", "relay", "run", "--stage", "ingest"],
        env={
            **os.environ,
            "RELAY_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "RELAY_BROKER_LOST_EXIT_S": "1",
            "RELAY_HTTP_PORT": "0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 75, out.stderr  # broker lost: the loop ran the worker
    return out.stderr


@pytest.mark.parametrize(("choice", "loop"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_relay_run_runs_on_the_chosen_event_loop(choice: str, loop: str) -> None:
    assert f"event loop: {loop}\n" in run_without_broker(RELAY_EVENT_LOOP=choice)


def test_relay_run_defaults_to_uvloop() -> None:
    assert "event loop: uvloop\n" in run_without_broker()


def test_without_uvloop_the_default_loop_is_asyncios(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    assert loop_factory() is uvloop.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import fails
    assert loop_factory("uvloop") is None
    assert loop_factory("asyncio") is None
