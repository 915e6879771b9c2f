"""The settings table: one row per variable, bounds with messages naming it, docs from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import SETTINGS, Settings, load_settings
from relay.errors import ConfigError
from relay.settings_table import BEGIN_MARK, END_MARK, describe_default, markdown

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    ("env", "setting", "reason"),
    [
        ({"RELAY_HTTP_PORT": "nan"}, "RELAY_HTTP_PORT", "whole number"),
        ({"RELAY_HTTP_PORT": "70000"}, "RELAY_HTTP_PORT", "between 0 and 65535"),
        ({"RELAY_ACCOUNT_LIMIT": "inf"}, "RELAY_ACCOUNT_LIMIT", "whole number"),
        ({"RELAY_ACCOUNT_WINDOW_S": "inf"}, "RELAY_ACCOUNT_WINDOW_S", "finite"),
        ({"RELAY_ACCOUNT_WINDOW_S": "nan"}, "RELAY_ACCOUNT_WINDOW_S", "finite"),
        ({"RELAY_ACCOUNT_WINDOW_S": "0"}, "RELAY_ACCOUNT_WINDOW_S", "greater than 0"),
        ({"RELAY_MAX_IN_FLIGHT_REQUESTS": "0"}, "RELAY_MAX_IN_FLIGHT_REQUESTS", "between 1"),
        ({"RELAY_MAX_BUFFERED_EVENTS": "0"}, "RELAY_MAX_BUFFERED_EVENTS", "at least 1"),
        ({"RELAY_WEB_BATCH_SIZE": "2.9"}, "RELAY_WEB_BATCH_SIZE", "whole number"),
        ({"RELAY_WEB_BATCH_SIZE": "501"}, "RELAY_WEB_BATCH_SIZE", "between 1 and 500"),
        ({"RELAY_INPUTS": "t=mobile"}, "RELAY_DEVICE_ID_HMAC_KEY", "is required"),
        ({"RELAY_INPUTS": "t=csv"}, "RELAY_INPUTS", "unknown format"),
        ({"RELAY_INPUTS": ","}, "RELAY_INPUTS", "names no input topic"),
        ({"RELAY_LINGER_S": "-1"}, "RELAY_LINGER_S", "between 0 and 60"),
        ({"RELAY_USE_PIXEL_TOKEN": "maybe"}, "RELAY_USE_PIXEL_TOKEN", "true or false"),
        ({"RELAY_LOG_LEVEL": "LOUD"}, "RELAY_LOG_LEVEL", "one of DEBUG"),
        ({"RELAY_KAFKA_BOOTSTRAP": "localhost"}, "RELAY_KAFKA_BOOTSTRAP", "host:port"),
        ({"RELAY_API_BASE_URL": "ftp://x"}, "RELAY_API_BASE_URL", "http(s) URL"),
        ({"RELAY_TOPIC_PREFIX": "a b"}, "RELAY_TOPIC_PREFIX", "letters"),
        ({"RELAY_DEFAULT_PHONE_REGION": "usa"}, "RELAY_DEFAULT_PHONE_REGION", "two-letter"),
        ({"RELAY_RETRY_BASE_S": "90"}, "RELAY_RETRY_BASE_S", "RELAY_RETRY_MAX_S"),
        ({"RELAY_CONFIG": "/nonexistent.toml"}, "RELAY_CONFIG", "cannot read"),
        ({"RELAY_CONSUMER_SECRET_FILE": "/nonexistent"}, "RELAY_CONSUMER_SECRET_FILE", "cannot"),
    ],
)
def test_each_bad_value_is_named(env: dict[str, str], setting: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert [p.setting for p in caught.value.problems] == [setting]
    assert reason in caught.value.problems[0].message
    assert setting in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"RELAY_HTTP_PORT": "nan", "RELAY_ACCOUNT_LIMIT": "0", "RELAY_LINGER_S": "x"})
    assert {p.setting for p in caught.value.problems} == {
        "RELAY_HTTP_PORT",
        "RELAY_ACCOUNT_LIMIT",
        "RELAY_LINGER_S",
    }


def test_overrides_are_checked_against_the_same_bounds() -> None:
    with pytest.raises(ConfigError, match="RELAY_MAX_IN_FLIGHT_REQUESTS"):
        load_settings({}, max_in_flight_requests=0)
    with pytest.raises(ConfigError, match="RELAY_ACCOUNT_WINDOW_S"):
        load_settings({}, account_window_s=float("inf"))


def test_a_value_and_its_file_together_are_ambiguous(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("x")
    with pytest.raises(ConfigError, match="set either RELAY_CONSUMER_SECRET or"):
        load_settings({"RELAY_CONSUMER_SECRET": "y", "RELAY_CONSUMER_SECRET_FILE": str(secret)})


def test_defaults_are_the_tables() -> None:
    defaults = load_settings({})
    for row in SETTINGS:
        if row.field and not row.secret:
            assert getattr(defaults, row.field) == row.default_value(), row.name
    # Every plain field of Settings is a row, so nothing has a default written elsewhere.
    fields = {f.name for f in dataclasses.fields(Settings)} - {"credentials", "mapping"}
    assert fields == {row.field for row in SETTINGS if row.field}


def test_values_parse_to_their_types() -> None:
    s = load_settings(
        {
            "RELAY_HTTP_PORT": " 9500 ",
            "RELAY_LINGER_S": "1.5",
            "RELAY_USE_PIXEL_TOKEN": "yes",
            "RELAY_LOG_LEVEL": "debug",
            "RELAY_API_BASE_URL": "http://127.0.0.1:8080/",
        }
    )
    assert (s.http_port, s.linger_s, s.use_pixel_token) == (9500, 1.5, True)
    assert (s.log_level, s.api_base_url) == ("DEBUG", "http://127.0.0.1:8080")


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN_MARK) + len(BEGIN_MARK) : text.index(END_MARK)]
    assert block.strip() == markdown(SETTINGS), "run `relay config table --write README.md`"


def test_run_help_lists_every_setting_with_its_default() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "relay", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for row in SETTINGS:
        assert f"{row.name}  [" in out, row.name
        assert f"default: {describe_default(row)}]" in out
    assert "RELAY_LOG_LEVEL" in out


def test_settings_copy_and_refuse_pickling() -> None:
    import copy
    import pickle

    settings = load_settings({"RELAY_CONSUMER_SECRET": "s", "RELAY_CONSUMER_KEY": "k"})
    assert copy.deepcopy(settings).credentials.consumer_secret.reveal() == "s"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(settings.credentials.consumer_secret)


def test_one_variable_can_be_read_alone_with_the_same_rules() -> None:
    from relay.config import setting_value

    assert setting_value({}, "RELAY_ACCOUNT_LIMIT") == 60_000
    assert setting_value({"RELAY_ACCOUNT_WINDOW_S": "2"}, "RELAY_ACCOUNT_WINDOW_S") == 2.0
    for bad in ("inf", "0", "x"):
        with pytest.raises(ConfigError, match="RELAY_ACCOUNT_LIMIT"):
            setting_value({"RELAY_ACCOUNT_LIMIT": bad}, "RELAY_ACCOUNT_LIMIT")
