"""Validation of rendered manifests: core kinds with kubernetes-validate (strict), custom
resources against the OpenAPI schemas of their published CRDs (tests/data/crd-schemas).

The CRD schemas are validated strictly too: an object schema that lists its properties and
does not preserve unknown fields rejects any other field, as `kubectl apply --validate=strict`
would (the API server would silently prune it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

CRD_SCHEMAS = Path(__file__).resolve().parent / "data" / "crd-schemas"
KUBERNETES_VERSION = "1.30.0"
CRD_GROUPS = ("monitoring.coreos.com", "keda.sh", "kafka.strimzi.io")


def _closed(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever Kubernetes would prune."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: _closed(v) for k, v in schema.items()}
    if result.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.partition("/")
    path = CRD_SCHEMAS / f"{kind}.{group}.{version}.json"
    if not path.exists():
        raise LookupError(f"no CRD schema for {kind} {api_version} in {CRD_SCHEMAS}")
    schema: dict[str, Any] = json.loads(path.read_text())
    schema.pop("$comment", None)
    closed: dict[str, Any] = _closed(schema)
    return closed


def validation_errors(doc: dict[str, Any]) -> Iterator[str]:
    """Every reason `doc` would not be accepted as it is."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    name = f"{kind}/{doc.get('metadata', {}).get('name')}"
    if api_version.split("/")[0] in CRD_GROUPS:
        validator = jsonschema.Draft7Validator(crd_schema(api_version, kind))
        for error in validator.iter_errors(doc):
            where = "/".join(str(p) for p in error.absolute_path)
            yield f"{name}: {where}: {error.message}"
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        yield f"{name}: {'/'.join(str(p) for p in exc.absolute_path)}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        yield f"{name}: no schema: {exc}"


def empty_selectors(node: Any, path: str = "") -> Iterator[str]:
    """Paths of selectors that select everything: `{}` or `{matchLabels: {}}`."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}"
            if key.lower().endswith("selector") and isinstance(value, dict):
                labels = value.get("matchLabels", value if key == "selector" else None)
                if not value or (
                    not value.get("matchExpressions") and isinstance(labels, dict) and not labels
                ):
                    yield here
            yield from empty_selectors(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from empty_selectors(value, f"{path}/{i}")
