from pathlib import Path

import pytest

from relay.config import default_mapping_path, load_settings, parse_inputs
from relay.errors import ConfigError


def test_defaults_match_the_contract() -> None:
    s = load_settings({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.api_base_url == "https://ads-api.x.com"
    assert (s.account_limit, s.account_window_s) == (60_000, 900)
    assert (s.outbound_topic, s.dlq_topic, s.attributions_topic) == (
        "relay.outbound",
        "relay.dlq",
        "relay.attributions",
    )
    assert (s.ingest_group, s.deliver_group) == ("relay-ingest", "relay-deliver")


def test_environment_credentials_win_over_the_file_and_are_masked() -> None:
    s = load_settings(
        {
            "RELAY_CONFIG": str(default_mapping_path()),
            "RELAY_CONSUMER_KEY": "ck",
            "RELAY_CONSUMER_SECRET": "very-secret-1",
            "RELAY_ACCESS_TOKEN": "at",
            "RELAY_ACCESS_TOKEN_SECRET": "very-secret-2",
        }
    )
    assert s.credentials.consumer_key == "ck"
    assert s.credentials.consumer_secret.reveal() == "very-secret-1"
    assert "very-secret" not in repr(s)
    file_only = load_settings({"RELAY_CONFIG": str(default_mapping_path())})
    assert file_only.credentials.consumer_key == "relay-demo-consumer-key"
    assert file_only.mapping.account_for_pixel("o8z6j") == "18ce552mlaq"


def test_secrets_from_mounted_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    s = load_settings({"RELAY_CONSUMER_SECRET_FILE": str(secret), "RELAY_CONSUMER_KEY": "ck"})
    assert s.credentials.consumer_secret.reveal() == "from-a-file"


@pytest.mark.parametrize(
    "env",
    [
        {"RELAY_ACCOUNT_LIMIT": "0"},
        {"RELAY_ACCOUNT_LIMIT": "lots"},
        {"RELAY_INPUTS": "topic-without-format"},
        {"RELAY_INPUTS": "t=csv"},
        {"RELAY_WEB_BATCH_SIZE": "501"},
        {"RELAY_DEVICE_ID_HMAC_KEY": "not base64!"},
        {"RELAY_USE_PIXEL_TOKEN": "maybe"},
        {"RELAY_CONFIG": "/nonexistent/relay.toml"},
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(env)


def test_inputs_and_yaml_mapping(tmp_path: Path) -> None:
    assert parse_inputs("a=web, b=appsflyer") == {"a": "web", "b": "appsflyer"}
    mapping = tmp_path / "m.yaml"
    mapping.write_text("pixels:\n  - id: abc12\n    account_id: acc1\n    event_ids: [e1]\n")
    s = load_settings({"RELAY_CONFIG": str(mapping)})
    assert s.mapping.pixels["abc12"].event_ids == ("e1",)


def test_ledger_settings_and_companion_topics() -> None:
    s = load_settings({"RELAY_TOPIC_PREFIX": "p"})
    assert (s.delivered_topic, s.delayed_topic) == ("p.delivered", "p.delayed")
    assert (s.ledger_window_s, s.ledger_flush_interval_s, s.ledger_flush_keys) == (3600, 0.1, 2000)
    s = load_settings({"RELAY_LEDGER_WINDOW_S": "60", "RELAY_LEDGER_FLUSH_KEYS": "10"})
    assert (s.ledger_window_s, s.ledger_flush_keys) == (60, 10)
    with pytest.raises(ConfigError, match="RELAY_LEDGER_FLUSH_KEYS"):
        load_settings({"RELAY_LEDGER_FLUSH_KEYS": "0"})
    with pytest.raises(ConfigError, match="RELAY_LEDGER_WINDOW_S"):
        load_settings({"RELAY_LEDGER_WINDOW_S": "0"})
