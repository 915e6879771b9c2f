"""What a scenario has found so far: results and targets are filled as it goes, so that a
scenario that fails half way still reports what it measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relay.tools.bench.results import Target


@dataclass
class Outcome:
    name: str
    result: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    settings: str = "default settings"
