"""Each format's generator makes what it says: valid records pass the adapter, dropped ones
are dropped and broken ones are invalid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from relay.config import load_mapping
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import NormalizeContext
from relay.formats.registry import adapter_for
from relay.pipeline.ingest_chunk import decode_record
from relay.tools.produce import generate
from tests.app_formats import KEY, MAPPING

FORMATS = ("web", "mobile", "appsflyer", "adjust", "branch", "segment")


def outcome(fmt: str, value: bytes) -> str:
    ctx = NormalizeContext(mapping=MAPPING, device_id_hmac_key=KEY, default_phone_region=None)
    try:
        adapter_for(fmt)(decode_record(value, 65536), ctx)
    except DroppedEvent:
        return "drop"
    except InvalidEvent:
        return "dead_letter"
    return "deliver"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_record_becomes_what_the_generator_says(fmt: str) -> None:
    records = list(generate(fmt, 600, MAPPING, invalid_ratio=0.2, opt_out_ratio=0.2, seed=11))
    seen = Counter(s.expect for s in records)
    assert seen["deliver"] > 300 and seen["drop"] > 60 and seen["dead_letter"] > 60
    wrong = [(s.expect, outcome(fmt, s.value), s.value[:300]) for s in records]
    wrong = [w for w in wrong if w[0] != w[1]]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("fmt", FORMATS[1:])
def test_payloads_are_varied_and_realistic(fmt: str) -> None:
    values = [orjson.loads(s.value) for s in generate(fmt, 300, MAPPING, seed=5)]
    text = orjson.dumps(values).decode()
    if fmt == "segment":
        assert {"+44", "+33", "+81"} <= {
            p for p in ("+1 ", "+44", "+33", "+49", "+81") if p in text
        }
        assert len({v["properties"]["pixel_id"] for v in values}) >= 2
        return
    # Both demo apps (Branch: both OSes of the Branch app), revenue in the format's style.
    if fmt == "branch":
        assert '"idfa":' in text and '"aaid":' in text
    else:
        assert "333903271" in text and "com.vine.android" in text
    style = {
        "mobile": '"revenue":"',
        "appsflyer": '\\"af_revenue\\":\\"',
        "adjust": "revenue",
        "branch": '"revenue":',
    }[fmt]
    assert style in text


def test_seeds_repeat() -> None:
    def devices(seed: int) -> list[str]:
        values = [orjson.loads(s.value) for s in generate("appsflyer", 50, MAPPING, seed=seed)]
        return [v["idfa"] or v["advertising_id"] for v in values]

    assert devices(3) == devices(3)
    assert devices(3) != devices(4)


async def test_produce_writes_an_app_feed_to_its_input_topic(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    from relay.tools.produce import produce
    from tests.app_formats import KEY_B64
    from tests.conftest import make_settings
    from tests.kafka_helpers import read_all

    topic = f"{topic_prefix}.in.adjust"
    settings = make_settings(
        kafka_bootstrap,
        topic_prefix,
        "http://127.0.0.1:9",
        RELAY_INPUTS=f"{topic}=adjust",
        RELAY_DEVICE_ID_HMAC_KEY=KEY_B64,
    )
    summary = await produce(
        settings, fmt="adjust", count=80, invalid_ratio=0.1, opt_out_ratio=0.2, seed=2
    )
    assert summary.produced == 80 == summary.deliver + summary.drop + summary.dead_letter
    records = await read_all(kafka_bootstrap, topic, 80)
    outcomes = Counter(outcome("adjust", r.value) for r in records)
    assert outcomes == Counter(
        deliver=summary.deliver, drop=summary.drop, dead_letter=summary.dead_letter
    )


def test_app_feeds_spread_over_the_mapped_accounts(tmp_path: Path) -> None:
    mapping_file = tmp_path / "apps.toml"
    mapping_file.write_text(
        "".join(
            f'[[apps]]\nid = "{app}"\nos_type = "{os}"\naccount_id = "{account}"\n'
            for app, os, account in (
                ("333903271", "IOS", "18ce54d4x5t"),
                ("com.vine.android", "ANDROID", "18ce54d4x5t"),
                ("1234567890", "IOS", "18ce55ab3cd"),
                ("com.example.travel", "ANDROID", "18ce55ab3cd"),
            )
        )
    )
    mapping = load_mapping(mapping_file)
    apps = Counter(orjson.loads(s.value)["app_id"] for s in generate("mobile", 400, mapping))
    assert set(apps) == {"333903271", "com.vine.android", "1234567890", "com.example.travel"}
    one = {
        orjson.loads(s.value)["account_id"] for s in generate("mobile", 100, mapping, accounts=1)
    }
    assert one == {"18ce54d4x5t"}
