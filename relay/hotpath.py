"""The modules compiled to C (mypyc, by setup.py at install time), and the guard that keeps a
stale build from running.

These are the synchronous per-event parts: the input formats, normalization and hashing, the
outbound codec, and the deliver stage's bookkeeping. Compiled, they cost about a third less
CPU per event (bench/profile.md, sixth round); the Python sources stay the reference and run
as they are wherever no build was made (no C compiler, `RELAY_PURE_PYTHON=1` at install).

A compiled module shadows its `.py` file. After a source is edited, the build of it is stale:
then every module of the list runs from its source (compiled modules call each other
directly, so they are used all together or not at all), and one line on stderr says so. Set
`RELAY_PURE_PYTHON=1` in the environment to run the sources on purpose (to compare, or to
debug with a Python debugger).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

PACKAGE_DIR: Final = Path(__file__).resolve().parent

# Paths relative to the repository root: what setup.py hands to mypyc.
COMPILED_SOURCES: Final = (
    "relay/formats/adjust.py",
    "relay/formats/app_common.py",
    "relay/formats/appsflyer.py",
    "relay/formats/base.py",
    "relay/formats/branch.py",
    "relay/formats/event_maps.py",
    "relay/formats/fields.py",
    "relay/formats/mobile.py",
    "relay/formats/registry.py",
    "relay/formats/segment.py",
    "relay/formats/web.py",
    "relay/formats/web_common.py",
    "relay/normalize/conversion_ids.py",
    "relay/normalize/device_ids.py",
    "relay/normalize/identifiers.py",
    "relay/normalize/money.py",
    "relay/normalize/timestamps.py",
    "relay/observability/coverage.py",
    "relay/pipeline/digest_set.py",
    "relay/pipeline/ingest_chunk.py",
    "relay/pipeline/intake.py",
    "relay/pipeline/lanes.py",
    "relay/pipeline/linger.py",
    "relay/pipeline/offsets.py",
    "relay/pipeline/outbound.py",
    "relay/pipeline/ratelimit.py",
)
PURE_PYTHON_ENV: Final = "RELAY_PURE_PYTHON"


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def _source_path(name: str, root: Path = PACKAGE_DIR.parent) -> Path:
    return root / (name.replace(".", "/") + ".py")


def stale_builds(names: Sequence[str], root: Path = PACKAGE_DIR.parent) -> list[str]:
    """The modules whose compiled build (under `root`, the directory that holds `relay/`) is
    older than their source."""
    stale = []
    for name in names:
        source = _source_path(name, root)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            build = source.with_name(source.stem + suffix)
            if build.exists() and source.exists():
                if build.stat().st_mtime < source.stat().st_mtime:
                    stale.append(name)
                break
    return stale


def is_compiled(module: ModuleType) -> bool:
    """Whether a module was loaded from a compiled build."""
    return not str(getattr(module, "__file__", "")).endswith(".py")


def running_compiled() -> bool:
    """Whether this process runs the compiled hot path (the `relay_build` metric says it)."""
    from relay.pipeline import outbound

    return is_compiled(outbound)


class _SourcesFirst:
    """A meta path finder that loads the listed modules from their `.py` files."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, _source_path(fullname))


def choose() -> None:
    """Run the sources instead of the builds when asked to or when a build is stale; called
    once, when the `relay` package is imported."""
    names = [module_name(source) for source in COMPILED_SOURCES]
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        sys.meta_path.insert(0, _SourcesFirst(names))
        return
    stale = stale_builds(names)
    if stale:
        sys.meta_path.insert(0, _SourcesFirst(names))
        sys.stderr.write(
            f"relay: compiled builds older than their sources ({', '.join(stale)}): running"
            " every hot-path module from source; `make install` (or `pip install -e .`)"
            " rebuilds them\n"
        )
