"""The published input contract (schemas/) agrees with the adapters: every schema example is
accepted, every documented bad example is refused by both, generated feeds fit the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from relay.errors import InvalidEvent
from relay.formats.base import NormalizeContext
from relay.formats.registry import ADAPTERS, adapter_for
from relay.tools.produce import generate
from tests.app_formats import KEY, MAPPING

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
FORMATS = sorted(ADAPTERS)
CTX = NormalizeContext(mapping=MAPPING, device_id_hmac_key=KEY)


def load(fmt: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{fmt}.schema.json").read_text())
    return schema


def validator(fmt: str) -> Draft202012Validator:
    schema = load(fmt)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def bad_examples(fmt: str) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = json.loads(
        (SCHEMAS / "examples" / f"{fmt}.invalid.json").read_text()
    )
    return examples


def test_one_schema_per_format_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert sorted(p.name.split(".")[0] for p in SCHEMAS.glob("*.schema.json")) == FORMATS
    for fmt in FORMATS:
        assert f"schemas/{fmt}.schema.json" in readme, fmt
        assert f"schemas/examples/{fmt}.invalid.json" in readme, fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_schema_examples_are_accepted(fmt: str) -> None:
    schema = validator(fmt)
    examples = load(fmt)["examples"]
    assert len(examples) >= 3
    for example in examples:
        assert not list(schema.iter_errors(example)), example
        event = adapter_for(fmt)(example, CTX)  # neither invalid nor dropped
        assert event.kind == ("web" if fmt in ("web", "segment") else "app")


@pytest.mark.parametrize("fmt", FORMATS)
def test_documented_bad_examples_are_refused_by_schema_and_adapter(fmt: str) -> None:
    schema = validator(fmt)
    examples = bad_examples(fmt)
    assert len(examples) >= 4
    for example in examples:
        assert example["why"]
        assert list(schema.iter_errors(example["record"])), example["why"]
        with pytest.raises(InvalidEvent):
            adapter_for(fmt)(example["record"], CTX)


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_feeds_fit_the_schema(fmt: str) -> None:
    schema = validator(fmt)
    records = [s for s in generate(fmt, 300, MAPPING, opt_out_ratio=0.2, seed=23)]
    for synthetic in records:
        record = json.loads(synthetic.value)
        errors = [e.message for e in schema.iter_errors(record)]
        assert not errors, (synthetic.expect, record, errors[:2])
