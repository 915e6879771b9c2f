"""LICENSE, SECURITY.md and the Strimzi users agree with the project and with the relay's
topic and group names."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from relay.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_license_file_is_the_license_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 10_000  # the full text, not a pointer to it


def test_security_md_covers_what_it_must() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    for needed in (
        "Reporting a vulnerability",
        "What the relay stores where",
        "ACLs and retention",
        "deploy/strimzi/kafkauser.yaml",
        "RELAY_DLQ_REDACT",
        "HMAC key",
        "OAuth",
        "Rotation",
    ):
        assert needed in text, needed


def users() -> dict[str, list[dict[str, Any]]]:
    documents = yaml.safe_load_all((ROOT / "deploy/strimzi/kafkauser.yaml").read_text())
    result = {}
    for doc in documents:
        assert doc["apiVersion"] == "kafka.strimzi.io/v1" and doc["kind"] == "KafkaUser"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"
        assert doc["spec"]["authentication"]["type"] == "scram-sha-512"
        result[doc["metadata"]["name"]] = doc["spec"]["authorization"]["acls"]
    return result


def allowed(acls: list[dict[str, Any]], kind: str, name: str, operation: str) -> bool:
    for acl in acls:
        resource = acl["resource"]
        literal = resource.get("patternType", "literal") == "literal"
        matches = resource["name"] == name if literal else name.startswith(resource["name"])
        if resource["type"] == kind and matches and operation in acl["operations"]:
            return True
    return False


def test_the_strimzi_users_allow_what_each_stage_needs_and_no_more() -> None:
    lines = (ROOT / "deploy/base/relay.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    s = load_settings({k: v for k, v in env.items() if k.startswith("RELAY_")})
    (input_topic,) = s.inputs
    ingest = [
        ("topic", input_topic, "Read"),
        ("group", s.ingest_group, "Read"),
        ("topic", s.outbound_topic, "Write"),
        ("topic", s.dlq_topic, "Write"),
    ]
    deliver = [
        ("group", s.deliver_group, "Read"),
        ("topic", s.outbound_topic, "Read"),
        ("topic", s.delayed_topic, "Read"),
        ("topic", s.delayed_topic, "Write"),
        ("topic", s.delivered_topic, "Read"),
        ("topic", s.delivered_topic, "Write"),
        ("topic", s.dlq_topic, "Write"),
        ("topic", s.attributions_topic, "Write"),
    ]
    redrive = [
        ("topic", s.dlq_topic, "Read"),
        ("group", f"{s.topic_prefix}-redrive", "Read"),
        ("topic", input_topic, "Write"),
    ]
    acls = users()
    for user, needs in (
        ("conversion-relay-ingest", ingest),
        ("conversion-relay-deliver", deliver),
        ("conversion-relay", ingest + deliver),
        ("conversion-relay-redrive", redrive),
    ):
        for kind, name, operation in needs:
            assert allowed(acls[user], kind, name, operation), (user, kind, name, operation)
            assert allowed(acls[user], kind, name, "Describe"), (user, kind, name)
    # Raw PII stays with ingest: the delivery user cannot read the input topic.
    assert not allowed(acls["conversion-relay-deliver"], "topic", input_topic, "Read")
    assert not allowed(acls["conversion-relay-deliver"], "topic", input_topic, "Describe")
    assert not allowed(acls["conversion-relay-ingest"], "topic", s.delivered_topic, "Read")
    # The topics are KafkaTopic resources: nobody creates topics.
    for user, user_acls in acls.items():
        assert not any("Create" in acl["operations"] for acl in user_acls), user
