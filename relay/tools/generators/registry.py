"""Which generator serves which input format (`web` stays in relay/tools/produce.py)."""

from __future__ import annotations

from typing import Final

from relay.tools.generators import adjust, appsflyer, branch, mobile, segment
from relay.tools.generators.base import Generator

GENERATORS: Final[dict[str, Generator]] = {
    "mobile": mobile.GENERATOR,
    "appsflyer": appsflyer.GENERATOR,
    "adjust": adjust.GENERATOR,
    "branch": branch.GENERATOR,
    "segment": segment.GENERATOR,
}
