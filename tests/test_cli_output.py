"""Command-line output a script or a pipe can rely on: `relay produce` seeds, `relay api
--json` errors, progress lines off a terminal."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys

import orjson
import pytest

from relay.cli import build_parser
from relay.config import load_settings
from relay.tools.api import EXIT_REJECTED, EXIT_UNAUTHORIZED, run_api
from relay.tools.progress import ProgressLine
from tests.kafka_helpers import read_all


async def produce(bootstrap: str, topic: str, *extra: str) -> tuple[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    # A loopback API: the packaged sandbox defaults supply the pixels, as the README says.
    env.update(RELAY_KAFKA_BOOTSTRAP=bootstrap, RELAY_API_BASE_URL="http://127.0.0.1:9")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "produce",
        "--count",
        "30",
        "--topic",
        topic,
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert b"\r" not in err
    seed = re.search(r"seed (\d+) \(--seed \1 repeats this run\)", err.decode())
    assert seed, err.decode()
    ids = {orjson.loads(r.value)["conversion_id"] for r in await read_all(bootstrap, topic, 30)}
    return seed.group(1), ids


async def test_produce_seeds_are_random_and_repeatable(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    seed_a, ids_a = await produce(kafka_bootstrap, f"{topic_prefix}.a")
    seed_b, ids_b = await produce(kafka_bootstrap, f"{topic_prefix}.b")
    assert seed_a != seed_b and not ids_a & ids_b  # a repeat sends new conversions
    seed_c, ids_c = await produce(kafka_bootstrap, f"{topic_prefix}.c", "--seed", seed_a)
    assert seed_c == seed_a and ids_c == ids_a  # --seed repeats a run


def test_api_json_errors_are_json(sandbox_process_url: str) -> None:
    def api(env: dict[str, str], *argv: str) -> tuple[int, dict[str, object]]:
        out = io.StringIO()
        code = run_api(build_parser().parse_args(["api", *argv]), load_settings(env), out)
        return code, orjson.loads(out.getvalue())

    wrong = {
        "RELAY_API_BASE_URL": sandbox_process_url,
        "RELAY_CONSUMER_KEY": "relay-demo-consumer-key",
        "RELAY_CONSUMER_SECRET": "not-the-secret",
        "RELAY_ACCESS_TOKEN": "1000000001-relaydemoaccesstoken",
        "RELAY_ACCESS_TOKEN_SECRET": "relay-demo-access-token-secret",
    }
    code, body = api(wrong, "app-lists", "list", "--account", "18ce54d4x5t", "--json")
    assert code == EXIT_UNAUTHORIZED
    assert body["error"]["reason"] == "unauthorized"  # type: ignore[index]

    right = {"RELAY_API_BASE_URL": sandbox_process_url}  # loopback: the packaged credentials
    code, body = api(right, "app-lists", "get", "--account", "18ce54d4x5t", "nope", "--json")
    assert code == EXIT_REJECTED
    error = body["error"]
    assert isinstance(error, dict) and error["reason"] == "rejected" and error["errors"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["app-lists", "list", "--json"], "the following arguments are required: --account"),
        (["app-lists", "--json"], "the following arguments are required: VERB"),
        (["nope", "--json"], "invalid choice: 'nope'"),
    ],
)
def test_api_json_usage_errors_are_json(argv: list[str], said: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "relay", "api", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    error = orjson.loads(done.stdout)["error"]
    assert error["exit_code"] == 2 and error["reason"] == "usage"
    assert said in error["message"]
    plain = subprocess.run(
        [sys.executable, "-m", "relay", "api", *[a for a in argv if a != "--json"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 2 and not plain.stdout and "error:" in plain.stderr


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [False, True])
def test_progress_lines(tty: bool) -> None:
    now = [0.0]
    stream = Stream(tty)
    line = ProgressLine(stream, every_s=2, clock=lambda: now[0])
    for i in range(10):
        line.show(f"step {i}")
        now[0] += 0.5
    line.done("finished")
    text = stream.getvalue()
    if tty:  # one live line, rewritten in place
        assert text.count("\n") == 1 and text.count("\r") == 11
    else:  # whole lines, at most one per 2 s, and the last state always
        assert "\r" not in text
        assert text.splitlines() == ["step 0", "step 4", "step 8", "finished"]
