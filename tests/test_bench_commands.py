"""`relay bench`'s table of scenarios: every runner it names exists and is a coroutine."""

from __future__ import annotations

import inspect

import pytest

from relay.errors import ConfigError
from relay.tools.bench.commands import SCENARIOS, _scenario


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_names_a_runner_that_exists(name: str) -> None:
    runner = _scenario(name)
    assert inspect.iscoroutinefunction(runner)
    assert runner.__name__ == f"run_{name.replace('-', '_')}"


def test_an_unknown_scenario_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown benchmark"):
        _scenario("warp-speed")
