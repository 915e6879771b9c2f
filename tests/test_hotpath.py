"""The compiled hot path (relay/hotpath.py, setup.py): built where a C compiler is, never run
stale, and the sources on request."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay import hotpath
from relay.formats import web
from relay.pipeline import outbound

ROOT = Path(__file__).resolve().parent.parent


def _relay_python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(
    os.environ.get(hotpath.PURE_PYTHON_ENV, "") not in ("", "0") or shutil.which("cc") is None,
    reason="a pure Python install: no C compiler, or RELAY_PURE_PYTHON asked for one",
)
def test_an_install_with_a_c_compiler_runs_the_hot_path_compiled() -> None:
    assert hotpath.running_compiled()
    assert hotpath.is_compiled(web) and hotpath.is_compiled(outbound)
    assert hotpath.stale_builds([hotpath.module_name(s) for s in hotpath.COMPILED_SOURCES]) == []


def test_every_listed_module_exists_and_none_is_asynchronous() -> None:
    # mypyc's coroutines are not asyncio's: the compiled set stays synchronous code.
    for source in hotpath.COMPILED_SOURCES:
        text = (ROOT / source).read_text()
        assert "async def" not in text and "await " not in text, source


def test_the_pure_python_switch_runs_every_listed_module_from_source() -> None:
    files = _relay_python(
        "import importlib, relay.hotpath as h, relay.observability.metrics as m\n"
        "names = [h.module_name(s) for s in h.COMPILED_SOURCES]\n"
        "print(all(importlib.import_module(n).__file__.endswith('.py') for n in names))\n"
        "r = m.Metrics().registry\n"
        "print(r.get_sample_value('relay_build_info', {'version': '0.1.0', 'compiled': 'false'}))",
        RELAY_PURE_PYTHON="1",
    )
    assert files.splitlines() == ["True", "1.0"]


def test_a_build_older_than_its_source_is_stale(tmp_path: Path) -> None:
    names = ["relay.formats.web", "relay.pipeline.outbound", "relay.normalize.money"]
    for name in names:
        (tmp_path / name.replace(".", "/")).parent.mkdir(parents=True, exist_ok=True)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    shared = tmp_path / ("relay/hotpath__mypyc" + suffix)
    shared.write_bytes(b"")
    web_py = tmp_path / "relay/formats/web.py"
    outbound_py = tmp_path / "relay/pipeline/outbound.py"
    (tmp_path / "relay/normalize/money.py").write_text("")  # no build at all: not stale
    for source in (web_py, outbound_py):
        source.write_text("")
        build = source.with_name(source.stem + suffix)
        build.write_bytes(b"")
        os.utime(build, (1_000_000, 1_000_000))
    os.utime(outbound_py, (999_000, 999_000))  # its build is the newer one
    assert hotpath.stale_builds(names, tmp_path) == ["relay.formats.web"]
    shared.unlink()  # the builds run on it: without it every one is stale
    assert hotpath.stale_builds(names, tmp_path) == [
        "relay.formats.web",
        "relay.pipeline.outbound",
    ]


def test_a_build_of_a_module_no_longer_listed_is_found(tmp_path: Path) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "relay/pipeline").mkdir(parents=True)
    for name in (
        "relay/pipeline/fifo",
        "relay/pipeline/outbound",
        "relay/hotpath__mypyc",
    ):
        (tmp_path / (name + suffix)).write_bytes(b"")
    assert hotpath.unlisted_builds(tmp_path) == ["relay.pipeline.fifo"]


def test_the_pure_python_switch_reads_like_a_boolean() -> None:
    for value in ("1", "true", "YES", " on "):
        assert hotpath.pure_python_asked({hotpath.PURE_PYTHON_ENV: value})
    for value in ("", "0", "false", "no", "off"):
        assert not hotpath.pure_python_asked({hotpath.PURE_PYTHON_ENV: value})
    assert not hotpath.pure_python_asked({})
    # What the benchmarks record of the relay processes they start with those settings.
    assert not hotpath.runs_compiled({hotpath.PURE_PYTHON_ENV: "1"})
    assert hotpath.runs_compiled({hotpath.PURE_PYTHON_ENV: "0"}) == hotpath.running_compiled()


@pytest.mark.parametrize("source_tree", [True, False])
def test_a_stale_build_falls_back_to_the_sources_in_a_source_tree(
    tmp_path: Path, source_tree: bool
) -> None:
    # A copy of the package whose web.py was edited after its build. In a source tree (a
    # setup.py beside it) every listed module runs from source and stderr names the stale
    # one; an installed copy (no setup.py: a wheel writes its files in no set order) is not
    # checked.
    copy = tmp_path / "relay"
    shutil.copytree(ROOT / "relay", copy, ignore=shutil.ignore_patterns("__pycache__"))
    if not list(copy.glob("formats/web.*.so")):
        pytest.skip("no compiled build to make stale")
    if source_tree:
        shutil.copy2(ROOT / "setup.py", tmp_path / "setup.py")
    (copy / "formats/web.py").touch()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import relay.formats.web as w, relay.pipeline.outbound as o;"
            " print(w.__file__.endswith('.py'), o.__file__.endswith('.py'))",
        ],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    if source_tree:
        assert result.stdout.split() == ["True", "True"]
        assert "relay.formats.web" in result.stderr and "make install" in result.stderr
    else:
        assert result.stdout.split() == ["False", "False"]
        assert "relay:" not in result.stderr


def test_the_package_metadata_is_made_without_compiling(tmp_path: Path) -> None:
    # pip asks for the metadata in build hooks of their own before it builds (and a dry run
    # asks for nothing else): mypyc, ~13 s of CPU a time, runs only in the build. It writes
    # its C files under build/ when it runs.
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "relay", tmp_path / "relay", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed"]
    result = subprocess.run(
        [*pip, "--quiet", "--report", str(report), str(tmp_path)],
        env={k: v for k, v in os.environ.items() if k != hotpath.PURE_PYTHON_ENV},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=tmp_path,
    )
    (planned,) = json.loads(report.read_text())["install"]
    assert planned["metadata"]["name"] == "conversion-relay"
    assert not list(tmp_path.glob("build/**/*.c")), result.stderr[-2000:]
