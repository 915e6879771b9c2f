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
from collections.abc import Mapping, Sequence
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
SHARED_LIBRARY: Final = "relay.hotpath__mypyc"  # mypyc's code of every listed module
# A source tree (a clone, an editable install) is where sources change after a build; an
# installed wheel's files were built together and written in no particular order.
SOURCE_TREE: Final = (PACKAGE_DIR.parent / "setup.py").exists()


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def pure_python_asked(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(PURE_PYTHON_ENV, "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


def _source_path(name: str, root: Path = PACKAGE_DIR.parent) -> Path:
    return root / (name.replace(".", "/") + ".py")


def _build_of(name: str, root: Path) -> Path | None:
    base = root / name.replace(".", "/")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        build = base.with_name(base.name + suffix)
        if build.exists():
            return build
    return None


def stale_builds(names: Sequence[str], root: Path = PACKAGE_DIR.parent) -> list[str]:
    """The modules whose compiled build (under `root`, the directory that holds `relay/`) is
    older than their source, or has lost the shared library it runs on."""
    stale = []
    shared = _build_of(SHARED_LIBRARY, root)
    for name in names:
        source, build = _source_path(name, root), _build_of(name, root)
        if build is None or not source.exists():
            continue
        if shared is None or build.stat().st_mtime < source.stat().st_mtime:
            stale.append(name)
    return stale


def unlisted_builds(root: Path = PACKAGE_DIR.parent) -> list[str]:
    """Compiled modules under `root/relay` that the list no longer names: left by an earlier
    build, they would shadow their sources."""
    listed = {module_name(source) for source in COMPILED_SOURCES} | {SHARED_LIBRARY}
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    endings = {suffix.rpartition(".")[2] for suffix in suffixes}  # "so" on Linux
    found = set()
    for ending in endings:
        for path in (root / "relay").rglob("*." + ending):
            relative = path.relative_to(root).as_posix()
            suffix = next((s for s in suffixes if relative.endswith(s)), None)
            if suffix is not None:
                name = relative.removesuffix(suffix).replace("/", ".")
                if name not in listed:
                    found.add(name)
    return sorted(found)


def is_compiled(module: ModuleType) -> bool:
    """Whether a module was loaded from a compiled build."""
    return not str(getattr(module, "__file__", "")).endswith(".py")


def running_compiled() -> bool:
    """Whether this process runs the compiled hot path (the `relay_build` metric says it)."""
    from relay.pipeline import outbound

    return is_compiled(outbound)


def runs_compiled(environ: Mapping[str, str]) -> bool:
    """Whether a relay process started from this one with `environ` added runs compiled."""
    return running_compiled() and not pure_python_asked(environ)


class _SourcesFirst:
    """A meta path finder that loads the named modules from their `.py` files."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names or not _source_path(fullname).exists():
            return None
        return importlib.util.spec_from_file_location(fullname, _source_path(fullname))


def choose() -> None:
    """Run the sources instead of the builds when asked to, or in a source tree when a build
    is stale or left over; called once, when the `relay` package is imported."""
    names = [module_name(source) for source in COMPILED_SOURCES]
    asked = pure_python_asked()
    stale = stale_builds(names) if SOURCE_TREE and not asked else []
    stray = unlisted_builds() if SOURCE_TREE else []
    if asked or stale or stray:
        sys.meta_path.insert(0, _SourcesFirst(names + stray))
    if stale or stray:
        which = ", ".join(stale + stray)
        sys.stderr.write(
            f"relay: compiled builds older than their sources or left over ({which}): running"
            " every hot-path module from source; `make install` rebuilds them\n"
        )
