"""Which ACL bindings allow which of the relay's needs (no broker: built bindings)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from relay.config import load_settings
from relay.tools.kafka_acls import (
    ALLOW,
    DENY,
    AclsUnknown,
    Binding,
    Need,
    Operation,
    Pattern,
    Resource,
    bindings_of,
    needs,
    principal_of,
    refused,
)

ME = "User:relay"
SASL = {
    "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "RELAY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "RELAY_KAFKA_SASL_USERNAME": "relay",
    "RELAY_KAFKA_SASL_PASSWORD": "pw",
    "RELAY_TOPIC_PREFIX": "conv",
    "RELAY_INPUTS": "shop.web=web",
}


def allow(
    resource: Resource,
    name: str,
    operation: Operation,
    pattern: Pattern = Pattern.LITERAL,
    principal: str = ME,
    permission: int = ALLOW,
) -> Binding:
    return Binding(resource, name, pattern, principal, operation, permission)


def test_needs_cover_every_stage() -> None:
    settings = load_settings(SASL)
    wanted = {str(n) for n in needs(settings, "all", ["conv.dlq"])}
    assert {
        "READ on topic shop.web",
        "READ on topic conv.outbound",
        "READ on topic conv.delayed",
        "WRITE on topic conv.outbound",
        "WRITE on topic conv.dlq",
        "WRITE on topic conv.attributions",
        "WRITE on topic conv.delivered",
        "WRITE on topic conv.delayed",
        "READ on group conv-ingest",
        "READ on group conv-deliver",
        "CREATE on topic conv.dlq",
    } <= wanted
    assert "CREATE on topic conv.outbound" not in wanted  # it exists
    ingest = {str(n) for n in needs(settings, "ingest")}
    deliver = {str(n) for n in needs(settings, "deliver")}
    assert "READ on topic shop.web" in ingest and "READ on topic shop.web" not in deliver
    assert "READ on topic conv.outbound" in deliver and "READ on topic conv.outbound" not in ingest
    assert "WRITE on topic conv.attributions" not in ingest
    assert principal_of(settings) == "User:relay"
    assert principal_of(load_settings({})) is None


def test_prefixed_and_wildcard_patterns() -> None:
    settings = load_settings(SASL)
    bindings = [
        allow(Resource.TOPIC, "conv.", Operation.ALL, Pattern.PREFIXED),
        allow(Resource.TOPIC, "*", Operation.READ),
        allow(Resource.GROUP, "conv-", Operation.READ, Pattern.PREFIXED),
    ]
    assert refused(bindings, ME, needs(settings)) == []
    # Without the wildcard the input topic (outside the prefix) may not be read.
    assert [str(n) for n in refused(bindings[::2], ME, needs(settings))] == [
        "READ on topic shop.web"
    ]
    # A prefix is not a literal: `conv.` literally covers only a topic named `conv.`.
    literal = [allow(Resource.TOPIC, "conv.", Operation.ALL)]
    assert Need(Resource.TOPIC, "conv.dlq", Operation.WRITE) in refused(
        literal, ME, needs(settings)
    )


def test_deny_wins_and_principals_and_implied_describe() -> None:
    write_dlq = Need(Resource.TOPIC, "conv.dlq", Operation.WRITE)
    everything = allow(Resource.TOPIC, "*", Operation.ALL)
    deny = allow(Resource.TOPIC, "conv.dlq", Operation.WRITE, permission=DENY)
    assert refused([everything], ME, [write_dlq]) == []
    assert refused([everything, deny], ME, [write_dlq]) == [write_dlq]
    anyone = allow(Resource.TOPIC, "conv.dlq", Operation.WRITE, principal="User:*")
    other = allow(Resource.TOPIC, "conv.dlq", Operation.WRITE, principal="User:other")
    assert refused([anyone], ME, [write_dlq]) == []
    assert refused([other], ME, [write_dlq]) == [write_dlq]
    describe = Need(Resource.TOPIC, "conv.dlq", Operation.DESCRIBE)
    assert refused([allow(Resource.TOPIC, "conv.dlq", Operation.READ)], ME, [describe]) == []
    assert refused([allow(Resource.TOPIC, "conv.dlq", Operation.CREATE)], ME, [describe])
    # A topic may be created with CREATE on the cluster, a group is not a topic.
    create = Need(Resource.TOPIC, "conv.dlq", Operation.CREATE)
    assert refused([allow(Resource.CLUSTER, "kafka-cluster", Operation.CREATE)], ME, [create]) == []
    assert refused([allow(Resource.GROUP, "*", Operation.ALL)], ME, [create]) == [create]


def test_bindings_of_a_response() -> None:
    response = SimpleNamespace(
        error_code=0,
        resources=[(2, "conv.", 4, [("User:relay", "*", 4, 3)])],
    )
    assert bindings_of(response) == [
        Binding(2, "conv.", Pattern.PREFIXED, "User:relay", Operation.WRITE, ALLOW)
    ]
    for code, said in ((31, "may not describe ACLs"), (54, "no authorizer")):
        with pytest.raises(AclsUnknown, match=said):
            bindings_of(SimpleNamespace(error_code=code, resources=[]))


def strimzi_bindings(user: dict[str, Any]) -> list[Binding]:
    """A Strimzi KafkaUser's ACLs as the broker would describe them."""
    name = user["metadata"]["name"]
    found = []
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        pattern = Pattern.PREFIXED if resource.get("patternType") == "prefix" else Pattern.LITERAL
        for operation in acl["operations"]:
            found.append(
                Binding(
                    Resource[resource["type"].upper()],
                    resource.get("name", "kafka-cluster"),
                    pattern,
                    f"User:{name}",
                    Operation[operation.upper()],
                    ALLOW,
                )
            )
    return found


@pytest.mark.parametrize(
    ("user", "stage"),
    [
        ("conversion-relay-ingest", "ingest"),
        ("conversion-relay-deliver", "deliver"),
        ("conversion-relay", "all"),
    ],
)
def test_the_strimzi_users_allow_their_stage(user: str, stage: str) -> None:
    path = Path(__file__).parent.parent / "deploy/strimzi/kafkauser.yaml"
    users = {u["metadata"]["name"]: u for u in yaml.safe_load_all(path.read_text())}
    settings = load_settings({"RELAY_TOPIC_PREFIX": "relay", "RELAY_INPUTS": "conversions.web=web"})
    bindings = strimzi_bindings(users[user])
    assert refused(bindings, f"User:{user}", needs(settings, stage)) == []
    # The delivery user may not read the input topics: checking it as both stages says so.
    if stage == "deliver":
        assert Need(Resource.TOPIC, "conversions.web", Operation.READ) in refused(
            bindings, f"User:{user}", needs(settings, "all")
        )


def test_acl_report_names_each_refused_need_or_says_why_not() -> None:
    from relay.tools.config_check import Report, acl_report

    settings = load_settings(SASL)
    bindings = [
        allow(Resource.TOPIC, "*", Operation.ALL),
        allow(Resource.GROUP, "*", Operation.READ),
    ]
    deny = allow(Resource.TOPIC, "conv.dlq", Operation.WRITE, permission=DENY)
    report = Report()
    acl_report(settings, [*bindings, deny], needs(settings), report)
    assert [(p.setting, p.message) for p in report.problems] == [
        ("RELAY_KAFKA_SASL_USERNAME", "the ACLs do not allow User:relay WRITE on topic conv.dlq")
    ]
    allowed = Report()
    acl_report(settings, bindings, needs(settings), allowed)
    assert not allowed.problems and allowed.verified
    unknown = Report()
    acl_report(settings, "the broker has no authorizer", needs(settings), unknown)
    assert not unknown.problems
    assert [str(w) for w in unknown.warnings] == [
        "RELAY_KAFKA_BOOTSTRAP: cannot check ACLs: the broker has no authorizer; topic and "
        "group rights are not verified"
    ]
