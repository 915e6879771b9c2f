"""`relay validate`: the adapters offline over JSON lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from relay.cli import main
from relay.config import default_mapping_path
from tests.app_formats import ADID, IDFA, ZERO
from tests.test_formats_appsflyer import android, ios
from tests.test_formats_segment import order

SECRET_EMAIL = "jane.doe@example.com"


def feed(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_appsflyer_feed_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        orjson.dumps(ios()),
        orjson.dumps(android()),
        b"",  # blank lines are skipped, line numbers still count them
        orjson.dumps(ios(is_lat=True)),
        orjson.dumps(ios(idfa=ZERO)),
        orjson.dumps(ios(event_name="af_ad_view")),
        orjson.dumps(ios(event_time="20/11/2026 10:00")),
        b"{not json",
        orjson.dumps(android(advertising_id=ADID[:-4] + "SECRET")),
    ]
    code = main(["validate", "--format", "appsflyer", str(feed(tmp_path, lines))])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == [
        "line 7: invalid_event field=event_time: event_time is not an ISO-8601 time or epoch"
        " milliseconds",
        "line 8: invalid_json field=-: record is not valid JSON: unexpected character,"
        " expected a string key",
        "line 9: invalid_event field=advertising_id: advertising_id is not a device id (need the"
        " UUID shape 8-4-4-4-12 hex digits)",
        "8 records: 2 accepted, 3 dropped (limit_ad_tracking 1, not_a_conversion 1,"
        " zero_device_id 1), 3 invalid (invalid_event 2, invalid_json 1)",
    ]
    text = "\n".join(out)
    assert "SECRET" not in text and IDFA not in text and ADID[:8] not in text


def test_a_clean_feed_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = feed(tmp_path, [orjson.dumps(order()), orjson.dumps(order(type="page"))])
    config = str(default_mapping_path())
    assert main(["validate", "--format", "segment", "--config", config, str(path)]) == 0
    assert capsys.readouterr().out == (
        "2 records: 1 accepted, 1 dropped (not_a_conversion 1), 0 invalid\n"
    )


def test_segment_errors_never_print_pii(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = order(context={"traits": {"email": SECRET_EMAIL, "phone": "+1 555 SECRET"}})
    path = feed(tmp_path, [orjson.dumps(bad)])
    config = str(default_mapping_path())
    assert main(["validate", "--format", "segment", "--config", config, str(path)]) == 1
    out = capsys.readouterr().out
    assert "field=context.traits.phone" in out
    assert "jane" not in out and "SECRET" not in out and "555" not in out


def test_stdin_and_a_missing_file(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "relay", "validate", "--format", "mobile"]
    done = subprocess.run(
        command, input=b'{"app_id": 1}\n', capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stdout.decode().startswith("line 1: invalid_event field=os_type:")
    missing = subprocess.run(
        [*command, str(tmp_path / "nope.jsonl")], capture_output=True, timeout=60, check=False
    )
    assert missing.returncode == 2
    assert b"cannot read" in missing.stderr
