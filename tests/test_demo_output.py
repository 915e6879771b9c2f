"""`relay demo` as a real process writing into a pipe: whole progress lines whose produced
count never goes back, and a summary that tells what happened to an event, not only counts."""

from __future__ import annotations

import asyncio
import re
import sys

import orjson


async def test_demo_tells_what_happened() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "demo",
        "--count",
        "6000",
        "--invalid-ratio",
        "0.05",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_b, err_b = await asyncio.wait_for(process.communicate(), 240)
    out, err = out_b.decode(), err_b.decode()
    assert process.returncode == 0, out + err
    assert "\r" not in err, "progress must be whole lines when not on a terminal"
    produced = [int(n.replace(",", "")) for n in re.findall(r"produced ([\d,]+) ", err)]
    assert produced and produced == sorted(produced), produced
    assert produced[-1] == 6000

    lines = out.splitlines()
    received = lines[lines.index(next(ln for ln in lines if "as received" in ln)) + 1]
    sent = lines[lines.index(next(ln for ln in lines if "as X received it" in ln)) + 1]
    raw, hashed = orjson.loads(received), orjson.loads(sent)
    assert raw["conversion_id"] == hashed["conversion_id"]
    assert "@" in raw["email"] and "@" not in sent
    assert any(
        re.fullmatch(r"[0-9a-f]{64}", i.get("hashed_email", "")) for i in hashed["identifiers"]
    )

    assert re.search(r"^web\s+6,000\s+[\d,]+\s+[\d,]+\s+[\d,]+$", out, re.M), out
    assert re.search(r"batches: \d+, \d+ events on average", out)
    assert "waits for account budget" in out and "retries:" in out
    assert re.search(r"^\s+ingest\s+invalid_\w+\s+\d+$", out, re.M), out
