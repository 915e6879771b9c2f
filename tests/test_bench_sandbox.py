"""`relay bench sandbox`'s results document: the conversion_event CPU ratio and its target."""

from __future__ import annotations

import time
from pathlib import Path

from relay.tools.bench.results import load_all, write
from relay.tools.bench_sandbox import Result, result_doc

EVENT = "conversion_event, OAuth"


def _result(sandbox: str, cpu_s: float) -> Result:
    return Result(EVENT, sandbox, 1000, 1, 1.0, cpu_s)


def test_the_ratio_of_cpu_per_answer_is_the_target() -> None:
    found = [_result("this tree", 0.1), _result("baseline 5a5f2b2", 0.35), _result("floor", 0.09)]
    doc = result_doc(found, "relay bench sandbox", time.monotonic(), "1.0 1.0 1.0")
    assert doc["result"]["conversion_event_cpu_ratio"] == 3.5
    assert doc["pass"] and doc["targets"][0]["pass"]
    rows = {row["server"]: row for row in doc["result"]["rows"]}
    assert rows["baseline 5a5f2b2"]["server_cpu_us_per_answer"] == 350.0


def test_short_of_the_target_or_without_a_baseline_it_fails() -> None:
    short = [_result("this tree", 0.2), _result("baseline 5a5f2b2", 0.4)]
    doc = result_doc(short, "relay bench sandbox", time.monotonic(), "1.0 1.0 1.0")
    assert doc["result"]["conversion_event_cpu_ratio"] == 2.0 and not doc["pass"]
    alone = result_doc([_result("this tree", 0.2)], "c", time.monotonic(), "1.0 1.0 1.0")
    assert alone["targets"][0]["value"] is None and not alone["pass"]


def test_the_document_is_one_the_report_reads(tmp_path: Path) -> None:
    doc = result_doc([_result("this tree", 0.1)], "c", time.monotonic(), "1.0 1.0 1.0")
    write(doc, tmp_path)
    assert [d["scenario"] for d in load_all(tmp_path)] == ["sandbox"]
