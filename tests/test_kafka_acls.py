"""Which ACL bindings allow which of the relay's needs (no broker: built bindings)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

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
    wanted = {str(n) for n in needs(settings, ["conv.dlq"])}
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
