"""Settings and mapping entries for app inputs: the HMAC key, device id case, event maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import default_mapping_path, load_mapping, load_settings
from relay.errors import ConfigError
from tests.app_formats import KEY, KEY_B64

APP_INPUTS = "in.web=web,in.af=appsflyer,in.adjust=adjust"


def test_app_inputs_without_an_hmac_key_refuse_to_start() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"RELAY_INPUTS": APP_INPUTS})
    message = str(err.value)
    assert "RELAY_DEVICE_ID_HMAC_KEY" in message
    assert "in.adjust" in message and "in.af" in message and "in.web" not in message


def test_web_and_segment_inputs_need_no_key() -> None:
    assert load_settings({"RELAY_INPUTS": "in.web=web,in.seg=segment"}).inputs["in.seg"] == (
        "segment"
    )


def test_app_settings() -> None:
    settings = load_settings(
        {
            "RELAY_INPUTS": APP_INPUTS,
            "RELAY_DEVICE_ID_HMAC_KEY": KEY_B64,
            "RELAY_DEVICE_ID_CASE": "Upper",
            "RELAY_EXTRA_DEVICE_IDS": "true",
        }
    )
    assert settings.device_id_case == "upper"
    assert settings.extra_device_ids is True
    assert KEY_B64 not in repr(settings)
    defaults = load_settings({"RELAY_INPUTS": APP_INPUTS, "RELAY_DEVICE_ID_HMAC_KEY": KEY_B64})
    assert (defaults.device_id_case, defaults.extra_device_ids) == ("as_received", False)


def test_the_key_file_works_too(tmp_path: Path) -> None:
    path = tmp_path / "hmac"
    path.write_text(KEY_B64 + "\n")
    settings = load_settings(
        {"RELAY_INPUTS": APP_INPUTS, "RELAY_DEVICE_ID_HMAC_KEY_FILE": str(path)}
    )
    from relay.pipeline.ingest import Ingestor

    assert Ingestor(settings).ctx.device_id_hmac_key == KEY


def test_unknown_device_id_case() -> None:
    with pytest.raises(ConfigError, match="RELAY_DEVICE_ID_CASE"):
        load_settings({"RELAY_DEVICE_ID_CASE": "title"})


def test_demo_defaults_map_the_demo_apps() -> None:
    mapping = load_mapping(default_mapping_path())
    assert mapping.account_for_app("333903271") == "18ce54d4x5t"
    assert mapping.apps["com.vine.android"].event_maps["adjust"]["bkrfgq"] == "PURCHASE"
    branch = next(iter(mapping.branch_apps.values()))
    assert (branch.ios_app_id, branch.android_app_id) == ("333903271", "com.vine.android")
    assert mapping.pixels["o8z6j"].segment_events["Order Completed"] == "o87ne"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        (
            '[[apps]]\nid = "1"\nos_type = "IOS"\naccount_id = "a"\nadjust_tokens = {t = "BUY"}\n',
            "BUY",
        ),
        ('[[apps]]\nid = "1"\nos_type = "WINDOWS"\naccount_id = "a"\n', "os_type"),
        ('[[apps]]\nid = "1"\nos_type = "IOS"\n', "account_id"),
        ('[[apps]]\nid = "1"\nos_type = "IOS"\naccount_id = "a"\nbranch_events = "x"\n', "table"),
        ('[[branch_apps]]\nios_app_id = "1"\n', "needs id"),
    ],
)
def test_bad_mapping_entries(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=needle):
        load_mapping(path)
