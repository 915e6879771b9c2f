"""`relay config check [--connect]` and `relay run` refusing what it refuses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import SETTINGS, default_mapping_path, read_document
from relay.sandbox.server import SandboxServer
from relay.settings_table import Setting
from relay.tools.config_check import check
from tests.kafka_helpers import produce_values
from tests.tls_fixtures import TlsKafka, tls_kafka

__all__ = ["tls_kafka"]  # the fixture, imported for pytest


def relay(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"RELAY_HTTP_PORT": "nan"}, "RELAY_HTTP_PORT"),
        ({"RELAY_ACCOUNT_LIMIT": "inf"}, "RELAY_ACCOUNT_LIMIT"),
        ({"RELAY_MAX_IN_FLIGHT_REQUESTS": "0"}, "RELAY_MAX_IN_FLIGHT_REQUESTS"),
        ({"RELAY_MAX_BUFFERED_EVENTS": "0"}, "RELAY_MAX_BUFFERED_EVENTS"),
        ({"RELAY_WEB_BATCH_SIZE": "2.9"}, "RELAY_WEB_BATCH_SIZE"),
        ({"RELAY_INPUTS": "t=csv"}, "RELAY_INPUTS"),
        ({"RELAY_DEVICE_ID_HMAC_KEY": "***"}, "RELAY_DEVICE_ID_HMAC_KEY"),
        ({"RELAY_API_BASE_URL": "http://ads-api.x.com"}, "RELAY_API_BASE_URL"),
        ({"RELAY_API_CA_FILE": "/nonexistent.pem"}, "RELAY_API_CA_FILE"),
        ({"RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "RELAY_KAFKA_SASL_MECHANISM"),
        ({"RELAY_CONSUMER_KEY": "only-the-key"}, "RELAY_CONSUMER_SECRET"),
        (
            {"RELAY_USE_PIXEL_TOKEN": "true", "RELAY_CONFIG": "pixels-without-tokens"},
            "RELAY_CONFIG",
        ),
        ({"RELAY_CONFIG": "broken-yaml"}, "RELAY_CONFIG"),
        ({"RELAY_LOG_LEVEL": "CHATTY"}, "RELAY_LOG_LEVEL"),
    ],
)
def test_each_invalid_setting_is_named(env: dict[str, str], setting: str, tmp_path: Path) -> None:
    files = {
        "pixels-without-tokens": "pixels:\n  - id: abc12\n    account_id: acc1\n",
        "broken-yaml": "pixels: [\n  - id: {\n",
    }
    if env.get("RELAY_CONFIG") in files:
        path = tmp_path / "mapping.yaml"
        path.write_text(files[env["RELAY_CONFIG"]])
        env = {**env, "RELAY_CONFIG": str(path)}
    report = check(env)
    assert setting in {p.setting for p in report.problems}, report.problems


def test_the_command_exits_non_zero_and_run_refuses_with_the_same_message() -> None:
    env = {"RELAY_HTTP_PORT": "nan", "RELAY_MAX_IN_FLIGHT_REQUESTS": "0"}
    checked = relay("config", "check", env=env)
    assert checked.returncode == 1
    assert "problem: RELAY_HTTP_PORT: must be a whole number, not 'nan'" in checked.stdout
    assert "problem: RELAY_MAX_IN_FLIGHT_REQUESTS: must be between 1 and 1024" in checked.stdout
    run = relay("run", env=env)
    assert run.returncode == 2
    assert "relay: error: RELAY_HTTP_PORT: must be a whole number, not 'nan'" in run.stderr
    assert "Traceback" not in run.stderr
    fine = relay("config", "check", env={"RELAY_CONFIG": str(default_mapping_path())})
    assert fine.returncode == 0, fine.stdout
    assert "no problem found" in fine.stdout


def test_a_typo_in_a_variable_name_is_a_warning() -> None:
    report = check({"RELAY_ACOUNT_LIMIT": "5", "RELAY_SANDBOX_TOKEN_LIMIT": "9"})
    assert [w.setting for w in report.warnings] == ["RELAY_ACOUNT_LIMIT"]
    assert not report.problems


def connect_env(bootstrap: str, prefix: str, api: str) -> dict[str, str]:
    return {
        "RELAY_KAFKA_BOOTSTRAP": bootstrap,
        "RELAY_API_BASE_URL": api,
        "RELAY_CONFIG": str(default_mapping_path()),
        "RELAY_TOPIC_PREFIX": prefix,
        "RELAY_INPUTS": f"{prefix}.input.web=web",
    }


async def test_connect_reaches_kafka_and_x(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    env = connect_env(kafka_bootstrap, topic_prefix, sandbox.url)
    missing = await asyncio.to_thread(check, env, connect=True)
    assert [p.setting for p in missing.problems] == ["RELAY_INPUTS"]
    assert "does not exist" in missing.problems[0].message

    await produce_values(kafka_bootstrap, f"{topic_prefix}.input.web", [b"{}"])
    report = await asyncio.to_thread(check, env, connect=True)
    assert not report.problems, report.problems
    assert any("X accepts the OAuth credentials" in line for line in report.verified)
    assert any(line.startswith("Kafka at") for line in report.verified)

    pixels = await asyncio.to_thread(check, {**env, "RELAY_USE_PIXEL_TOKEN": "true"}, connect=True)
    assert not pixels.problems, pixels.problems
    assert sum("pixel_token" in line for line in pixels.verified) >= 2


async def test_connect_names_rejected_credentials(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    file_credentials = read_document(default_mapping_path())["credentials"]
    env = {
        **connect_env(kafka_bootstrap, topic_prefix, sandbox.url),
        "RELAY_CONSUMER_KEY": file_credentials["consumer_key"],
        "RELAY_CONSUMER_SECRET": "not-the-secret",
        "RELAY_ACCESS_TOKEN": file_credentials["access_token"],
        "RELAY_ACCESS_TOKEN_SECRET": file_credentials["access_token_secret"],
    }
    report = await asyncio.to_thread(check, env, connect=True)
    rejected = [p for p in report.problems if p.setting == "RELAY_CONSUMER_KEY"]
    assert rejected and "401" in rejected[0].message
    assert "not-the-secret" not in str(report)


async def test_connect_names_the_ca_of_a_tls_broker(
    tls_kafka: TlsKafka, topic_prefix: str, sandbox: SandboxServer
) -> None:
    env = {
        **connect_env(tls_kafka.bootstrap, topic_prefix, sandbox.url),
        "RELAY_KAFKA_SECURITY_PROTOCOL": "SSL",
        "RELAY_KAFKA_SSL_CA_FILE": str(tls_kafka.pki.other_ca),
    }
    report = await asyncio.to_thread(check, env, connect=True)
    assert report.problems and "RELAY_KAFKA_SSL_CA_FILE" in report.problems[0].message
    good = await asyncio.to_thread(
        check, {**env, "RELAY_KAFKA_SSL_CA_FILE": str(tls_kafka.pki.ca)}, connect=True
    )
    kafka_lines = [line for line in good.verified if line.startswith("Kafka at")]
    assert kafka_lines and "(SSL)" in kafka_lines[0]


def bad_value(row: Setting) -> str | None:
    """A value the row must refuse, by its kind; None for free text without a check."""
    if row.name == "RELAY_DEVICE_ID_HMAC_KEY":
        return "not base64!"
    by_kind = {
        "int": "2.5",
        "float": "inf",
        "bool": "perhaps",
        "choice": "NOT-A-CHOICE",
        "path": "/nonexistent/file",
        "custom": "a b",
    }
    if row.kind in by_kind:
        return by_kind[row.kind]
    return "a b" if row.check is not None else None


@pytest.mark.parametrize("row", SETTINGS, ids=[row.name for row in SETTINGS])
def test_every_setting_with_rules_is_checked_by_name(row: Setting) -> None:
    value = bad_value(row)
    if value is None:
        assert row.kind in ("str", "secret") and row.check is None
        return
    report = check({row.name: value})
    assert row.name in {p.setting for p in report.problems}, report.problems
    if row.secret:
        assert value not in str(report)


def test_valid_settings_that_expose_data_in_transit_are_warned_about() -> None:
    plaintext = check({"RELAY_KAFKA_BOOTSTRAP": "kafka.internal:9092"})
    assert not plaintext.problems
    assert [w.setting for w in plaintext.warnings] == ["RELAY_KAFKA_SECURITY_PROTOCOL"]
    assert "in clear" in plaintext.warnings[0].message
    unchecked = check(
        {
            "RELAY_KAFKA_BOOTSTRAP": "kafka.internal:9093",
            "RELAY_KAFKA_SECURITY_PROTOCOL": "SSL",
            "RELAY_KAFKA_SSL_CHECK_HOSTNAME": "false",
            "RELAY_API_BASE_URL": "http://x-proxy.internal",
            "RELAY_API_ALLOW_HTTP": "true",
        }
    )
    assert [w.setting for w in unchecked.warnings] == [
        "RELAY_KAFKA_SSL_CHECK_HOSTNAME",
        "RELAY_API_BASE_URL",
    ]
    assert not check({}).warnings  # the embedded broker on loopback


async def test_connect_says_the_acls_cannot_be_checked(
    kafka_bootstrap: str, topic_prefix: str, sandbox: SandboxServer
) -> None:
    # The embedded broker answers DescribeAcls with no binding at all: said, not failed.
    env = connect_env(kafka_bootstrap, topic_prefix, sandbox.url)
    await produce_values(kafka_bootstrap, f"{topic_prefix}.input.web", [b"{}"])
    done = await asyncio.to_thread(relay, "config", "check", "--connect", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    said = [line for line in done.stdout.splitlines() if "cannot check ACLs" in line]
    assert len(said) == 1, done.stdout
    assert said[0].startswith("warning: RELAY_KAFKA_BOOTSTRAP")
    assert "no ACL" in said[0]
    assert "Traceback" not in done.stderr
