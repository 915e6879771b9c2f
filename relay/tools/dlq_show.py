"""`relay dlq show` (alias `inspect`): what the dead-letter topic holds, read-only.

Counts by stage, class and field (and X's api code), and the first few matching records
with their headers. Values of identifier fields (emails, phones, device ids, IPs, their
hashes) are masked unless `--show-pii`; a value that is not JSON has anything that looks
like an email or a phone number masked. Filters are those of `relay dlq redrive`. It reads
up to the end seen at start and commits nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiokafka import ConsumerRecord

from relay.config import Settings
from relay.tools.dlq_read import read_to_snapshot, snapshot_consumer
from relay.tools.redrive import matches, short_headers

MASK: Final = "***"
MAX_VALUE_CHARS: Final = 2000
# A key holding one of these (lower case) names an identifier of a person or a device.
PII_KEY_PARTS: Final = ("email", "phone", "device", "idfa", "idfv", "adid", "aaid", "advertising")
PII_KEYS: Final = frozenset({"ip", "ip_address", "android_id", "appsflyer_id", "user_agent"})
EMAIL_RE: Final = re.compile(rb"[^\s\"'<>@,;:]+@[^\s\"'<>@,;:]+")
DIGITS_RE: Final = re.compile(rb"\+?\d[\d\s().-]{5,}\d")


@dataclass
class DlqReport:
    read: int = 0
    matched: int = 0
    by_stage: Counter[str] = field(default_factory=Counter)
    by_class: Counter[str] = field(default_factory=Counter)
    by_field: Counter[str] = field(default_factory=Counter)
    by_api_code: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "matched": self.matched,
            "by_stage": dict(self.by_stage.most_common()),
            "by_class": dict(self.by_class.most_common()),
            "by_field": dict(self.by_field.most_common()),
            "by_api_code": dict(self.by_api_code.most_common()),
            "samples": self.samples,
        }


def is_pii_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in PII_KEYS or any(part in lowered for part in PII_KEY_PARTS)


def mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (MASK if is_pii_key(k) and v not in (None, "") else mask_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    return value


def render_value(raw: bytes | None, show_pii: bool) -> Any:
    """The record's value for display: parsed JSON when it is JSON, else text."""
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw if show_pii else DIGITS_RE.sub(MASK.encode(), EMAIL_RE.sub(MASK.encode(), raw))
        return text[:MAX_VALUE_CHARS].decode("utf-8", "replace")
    return doc if show_pii else mask_json(doc)


def sample(record: ConsumerRecord, show_pii: bool) -> dict[str, Any]:
    return {
        "partition": record.partition,
        "offset": record.offset,
        "key": (record.key or b"").decode("utf-8", "replace") or None,
        "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
        "value": render_value(record.value, show_pii),
    }


async def inspect_dlq(
    settings: Settings,
    *,
    filters: Mapping[str, str] | None = None,
    samples: int = 3,
    show_pii: bool = False,
) -> DlqReport:
    report = DlqReport()
    consumer = snapshot_consumer(settings, None)
    await consumer.start()
    try:
        async for _, records in read_to_snapshot(consumer, settings.dlq_topic):
            for record in records:
                report.read += 1
                headers = short_headers(record)
                if not matches(headers, filters or {}):
                    continue
                report.matched += 1
                report.by_stage[headers.get("stage", "-")] += 1
                report.by_class[headers.get("class", "-")] += 1
                report.by_field[headers.get("field", "-")] += 1
                if "api_code" in headers:
                    report.by_api_code[headers["api_code"]] += 1
                if len(report.samples) < samples:
                    report.samples.append(sample(record, show_pii))
    finally:
        await consumer.stop()
    return report


def render_report(report: DlqReport, topic: str) -> str:
    lines = [f"{topic}: {report.read:,} dead letters, {report.matched:,} matching"]
    for title, counts in (
        ("stage", report.by_stage),
        ("class", report.by_class),
        ("field", report.by_field),
        ("api code", report.by_api_code),
    ):
        if counts:
            lines.append(f"by {title}:")
            width = max(len(name) for name in counts)
            lines += [f"  {name.ljust(width)}  {n:>8,}" for name, n in counts.most_common()]
    for item in report.samples:
        lines.append(f"sample: partition {item['partition']} offset {item['offset']}")
        lines += [f"  {name}: {value}" for name, value in item["headers"].items()]
        lines.append("  value: " + orjson.dumps(item["value"]).decode())
    return "\n".join(lines)
