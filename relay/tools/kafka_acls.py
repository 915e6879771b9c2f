"""Do the broker's ACLs allow what the relay's stages need? (`relay config check --connect`)

The relay's needs are a list of (resource, name, operation); the broker's ACL bindings are read
with one DescribeAcls request (aiokafka's admin client has no call for it) and each need is
decided with Kafka's rules: a DENY wins over any ALLOW, ALL covers every operation, READ,
WRITE, DELETE and ALTER imply DESCRIBE, and a binding covers a name literally, by prefix, or
every name (`*`). Hosts are not compared: the address the broker sees is not known here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from relay.config import Settings


class Resource(IntEnum):
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(IntEnum):
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11


class Pattern(IntEnum):
    ANY = 1
    LITERAL = 3
    PREFIXED = 4


ALLOW = 3
DENY = 2
CLUSTER_NAME = "kafka-cluster"
IMPLY_DESCRIBE = {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}


@dataclass(frozen=True)
class Binding:
    """One ACL as the broker describes it."""

    resource: int
    name: str
    pattern: int
    principal: str
    operation: int
    permission: int


@dataclass(frozen=True)
class Need:
    resource: Resource
    name: str
    operation: Operation

    def __str__(self) -> str:
        return f"{self.operation.name} on {self.resource.name.lower()} {self.name}"


class AclsUnknown(Exception):
    """The broker would not, or could not, describe its ACLs: nothing can be decided."""


def needs(settings: Settings, stage: str = "all", missing_topics: Iterable[str] = ()) -> list[Need]:
    """What the stage(s) (`all`, `ingest`, `deliver`) do with Kafka; CREATE for the topics
    they use that are not there yet (the relay creates them at start)."""
    reads: list[str] = []
    writes = [settings.dlq_topic]
    groups: list[str] = []
    if stage in ("all", "ingest"):
        reads += settings.inputs
        writes.append(settings.outbound_topic)
        groups.append(settings.ingest_group)
    if stage in ("all", "deliver"):
        # The ledger rebuilds its window from the delivered topic at each assignment.
        reads += [settings.outbound_topic, settings.delayed_topic, settings.delivered_topic]
        writes += [settings.delayed_topic, settings.delivered_topic, settings.attributions_topic]
        groups.append(settings.deliver_group)
    used = set(reads) | set(writes)
    found = [Need(Resource.TOPIC, t, Operation.READ) for t in reads]
    found += [Need(Resource.TOPIC, t, Operation.WRITE) for t in writes]
    found += [Need(Resource.GROUP, g, Operation.READ) for g in groups]
    found += [Need(Resource.TOPIC, t, Operation.CREATE) for t in sorted(set(missing_topics) & used)]
    return found


def _covers_name(binding: Binding, resource: Resource, name: str) -> bool:
    if binding.resource != resource:
        return False
    if binding.pattern == Pattern.PREFIXED:
        return name.startswith(binding.name)
    return binding.name in (name, "*")


def _covers_operation(binding: Binding, operation: Operation) -> bool:
    if binding.operation in (operation, Operation.ALL):
        return True
    if operation == Operation.DESCRIBE:
        return binding.operation in IMPLY_DESCRIBE
    if operation == Operation.DESCRIBE_CONFIGS:
        return binding.operation == Operation.ALTER_CONFIGS
    return False


def _applies(binding: Binding, principal: str, need: Need) -> bool:
    if binding.principal not in (principal, "User:*"):
        return False
    if not _covers_operation(binding, need.operation):
        return False
    if _covers_name(binding, need.resource, need.name):
        return True
    # Creating a topic is also allowed by CREATE on the cluster.
    return need.operation == Operation.CREATE and _covers_name(
        binding, Resource.CLUSTER, CLUSTER_NAME
    )


def allowed(bindings: Iterable[Binding], principal: str, need: Need) -> bool:
    matching = [b for b in bindings if _applies(b, principal, need)]
    if any(b.permission == DENY for b in matching):
        return False
    return any(b.permission == ALLOW for b in matching)


def refused(bindings: Iterable[Binding], principal: str, wanted: Iterable[Need]) -> list[Need]:
    """The needs no binding allows (or a binding denies) for `principal` (`User:name`)."""
    held = list(bindings)
    return [need for need in wanted if not allowed(held, principal, need)]


def principal_of(settings: Settings) -> str | None:
    """`User:<SASL username>`; None when the broker derives it (a certificate, a token)."""
    if settings.kafka_sasl_username and settings.kafka_sasl_mechanism in (
        "PLAIN",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
    ):
        return f"User:{settings.kafka_sasl_username}"
    return None


def bindings_of(response: Any) -> list[Binding]:
    """The bindings of a DescribeAcls response; AclsUnknown on its error code."""
    if response.error_code:
        reasons = {
            31: "these credentials may not describe ACLs (DESCRIBE on the cluster)",
            54: "the broker has no authorizer",
        }
        reason = reasons.get(response.error_code, f"error code {response.error_code}")
        raise AclsUnknown(reason)
    found: list[Binding] = []
    for entry in response.resources:
        resource_type, name = entry[0], entry[1]
        pattern = entry[2] if len(entry) == 4 else Pattern.LITERAL
        for principal, _host, operation, permission in entry[-1]:
            found.append(Binding(resource_type, name, pattern, principal, operation, permission))
    return found


async def describe_bindings(admin: Any) -> list[Binding]:
    """Every binding the broker shows these credentials; AclsUnknown when it shows none."""
    from aiokafka.protocol.admin import DescribeAclsRequest

    # Any resource, any name, any pattern, any principal, host, operation, permission.
    request = DescribeAclsRequest(Resource.ANY, None, Pattern.ANY, None, None, Operation.ANY, 1)
    try:
        response = await admin._send_request(request)
    except Exception as exc:  # unsupported API, closed connection: said, not raised
        raise AclsUnknown(f"the broker did not answer DescribeAcls ({type(exc).__name__})") from exc
    found = bindings_of(response)
    if not found:
        # A broker without an authorizer may answer so, as may one hiding its ACLs.
        raise AclsUnknown("the broker describes no ACL at all (no authorizer?)")
    return found
