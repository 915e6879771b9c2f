"""The build of the hot-path modules (listed in relay/hotpath.py) as C extensions by mypyc.

Everything else is in pyproject.toml. The build is optional: without a C compiler, or with
RELAY_PURE_PYTHON=1 in the environment, the package installs as pure Python and runs the
same code from source.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _hotpath() -> Any:
    # Loaded by path: importing the `relay` package would import its dependencies.
    spec = importlib.util.spec_from_file_location("_relay_hotpath", ROOT / "relay" / "hotpath.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OptionalBuildExt(build_ext):
    """Installs the pure Python package when the C build fails, and says so. All or nothing:
    the modules' builds run on mypyc's shared library, so a failure of any one of them
    removes every one built."""

    def finalize_options(self) -> None:
        # pip loads setup.py once per build hook, and each hook's egg_info finalizes this
        # command to list the extensions' sources: mypyc runs only where the build does.
        exts = self.distribution.ext_modules
        metadata_only = set(self.distribution.commands) <= METADATA_COMMANDS
        if exts and exts[0] is PLACEHOLDER and not metadata_only:
            self.distribution.ext_modules = compiled_extensions()
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all, for one
            self._fell_back(exc)

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as exc:  # any compiler failure
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            self.extensions = []
            self._fell_back(exc)

    def _fell_back(self, exc: BaseException) -> None:
        sys.stderr.write(
            f"relay: the hot-path modules were not compiled ({exc}); installing them as pure"
            " Python (same behaviour, more CPU per event)\n"
        )


# Stands for the compiled modules until the build runs (OptionalBuildExt.finalize_options):
# a package with extensions is built as a platform wheel.
PLACEHOLDER = Extension("relay.hotpath__mypyc", sources=[])
# The commands that need no extension built: the package's metadata and its source archive.
METADATA_COMMANDS = frozenset({"egg_info", "dist_info", "sdist"})


def declared_extensions() -> list[Extension]:
    """What setup() is told: the placeholder, or nothing when no build will be tried."""
    if _hotpath().pure_python_asked(os.environ):
        return []
    if importlib.util.find_spec("mypyc") is None:
        sys.stderr.write("relay: mypy is not installed; installing the pure Python package\n")
        return []
    return [PLACEHOLDER]


def compiled_extensions() -> list[Any]:
    from mypyc.build import mypycify

    hotpath = _hotpath()
    sys.stderr.write(
        f"relay: compiling {len(hotpath.COMPILED_SOURCES)} hot-path modules with mypyc\n"
    )
    # The third-party packages are not installed where this build runs: their types are Any
    # to mypyc (the lint run, `make lint`, checks them strictly).
    try:
        return list(
            mypycify(
                ["--ignore-missing-imports", *hotpath.COMPILED_SOURCES],
                group_name="relay.hotpath",
                opt_level="3",
            )
        )
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        sys.stderr.write(f"relay: mypyc could not compile the hot path ({exc}); pure Python\n")
        return []


setup(ext_modules=declared_extensions(), cmdclass={"build_ext": OptionalBuildExt})
