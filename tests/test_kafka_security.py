"""Kafka security settings reach every aiokafka client as intended.

The embedded broker (Tansu) cannot be given a SASL listener here, so SASL is shown on the
clients' built configuration: each client the relay builds hands its options to aiokafka's
own connection class, whose SASL authenticators then produce their first message (SCRAM's
client-first message, OAUTHBEARER's bearer request with a token fetched over real HTTP).
TLS is shown for real against a TLS terminator in `test_kafka_tls.py`.
"""

from __future__ import annotations

import base64
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import AIOKafkaConnection

from relay.config import Settings, load_settings
from relay.errors import BrokerError, ConfigError
from relay.kafka import make_admin, make_consumer, make_producer
from relay.kafka_oauth import ClientCredentialsTokenProvider, MskIamTokenProvider
from relay.kafka_security import kafka_options
from relay.secret import Secret
from tests.tls_fixtures import make_pki

RELAY = Path(__file__).resolve().parents[1] / "relay"


@contextlib.asynccontextmanager
async def clients_of(settings: Settings) -> AsyncIterator[list[Any]]:
    """The aiokafka clients inside a producer, a consumer and an admin client built by relay."""
    producer = make_producer(settings)
    consumer = make_consumer(settings, "t", group_id="g")
    admin = make_admin(settings)
    try:
        yield [producer.client, consumer._client, admin._client]
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


def connection_of(client: Any) -> AIOKafkaConnection:
    # Exactly the arguments aiokafka's client passes when it opens a broker connection.
    return AIOKafkaConnection(
        "broker.example",
        9096,
        client_id=client._client_id,
        ssl_context=client._ssl_context,
        security_protocol=client._security_protocol,
        sasl_mechanism=client._sasl_mechanism,
        sasl_plain_username=client._sasl_plain_username,
        sasl_plain_password=client._sasl_plain_password,
        sasl_oauth_token_provider=client._sasl_oauth_token_provider,
    )


def test_plaintext_by_default_with_a_client_id() -> None:
    options = kafka_options(load_settings({}))
    assert options == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "conversion-relay",
        "security_protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_scram_over_tls_reaches_every_client(mechanism: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    password = tmp_path / "password"
    password.write_text("scram-password\n")
    settings = load_settings(
        {
            "RELAY_KAFKA_BOOTSTRAP": "broker.example:9096",
            "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RELAY_KAFKA_SASL_MECHANISM": mechanism.lower(),
            "RELAY_KAFKA_SASL_USERNAME": "relay-user",
            "RELAY_KAFKA_SASL_PASSWORD_FILE": str(password),
            "RELAY_KAFKA_SSL_CA_FILE": str(pki.ca),
            "RELAY_KAFKA_SSL_CERT_FILE": str(pki.client_cert),
            "RELAY_KAFKA_SSL_KEY_FILE": str(pki.client_key),
            "RELAY_KAFKA_CLIENT_ID": "relay-prod",
        }
    )
    async with clients_of(settings) as clients:
        for client in clients:
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == mechanism
            assert client._client_id == "relay-prod"
            context: ssl.SSLContext = client._ssl_context
            assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
            assert any("relay-test-ca" in str(c["subject"]) for c in context.get_ca_certs())
            authenticator = connection_of(client).authenticator_scram()
            first, expects_answer = await authenticator.step(None)
            assert expects_answer
            assert re.fullmatch(rb"n,,n=relay-user,r=\w+", first), first
            assert authenticator._sasl_plain_password == b"scram-password"
    assert "scram-password" not in repr(settings)


async def test_plain_with_hostname_verification_turned_off() -> None:
    settings = load_settings(
        {
            "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RELAY_KAFKA_SASL_MECHANISM": "PLAIN",
            "RELAY_KAFKA_SASL_USERNAME": "u",
            "RELAY_KAFKA_SASL_PASSWORD": "p",
            "RELAY_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )
    async with clients_of(settings) as clients:
        for client in clients:
            assert client._sasl_mechanism == "PLAIN"
            assert not client._ssl_context.check_hostname
            assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED  # still verified
            step = await connection_of(client).authenticator_plain().step(None)
            assert step[0] == b"u\x00u\x00p"  # authzid, user, password


@pytest.fixture
async def token_endpoint() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An OAuth 2.0 token endpoint over real HTTP that records what it was asked."""
    seen: list[dict[str, Any]] = []

    async def issue(request: web.Request) -> web.Response:
        form = parse_qs(await request.text())
        seen.append({"authorization": request.headers.get("Authorization"), "form": form})
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(
            b"kafka-client:client-secret"
        ).decode("ascii"):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({"access_token": f"token-{len(seen)}", "expires_in": 100})

    app = web.Application()
    app.router.add_post("/token", issue)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/token", seen
    await runner.cleanup()


def oidc_settings(url: str, secret: str = "client-secret") -> Settings:
    return load_settings(
        {
            "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RELAY_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER": "oidc",
            "RELAY_KAFKA_OAUTH_TOKEN_URL": url,
            "RELAY_KAFKA_OAUTH_CLIENT_ID": "kafka-client",
            "RELAY_KAFKA_OAUTH_CLIENT_SECRET": secret,
            "RELAY_KAFKA_OAUTH_SCOPE": "kafka",
        }
    )


async def test_oauthbearer_tokens_come_from_the_token_endpoint(
    token_endpoint: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = token_endpoint
    async with clients_of(oidc_settings(url)) as clients:
        for client in clients:
            assert client._sasl_mechanism == "OAUTHBEARER"
            request, _ = await connection_of(client).authenticator_oauth().step(None)
            assert request.startswith(b"n,,\x01auth=Bearer token-")
            assert request.endswith(b"\x01\x01")
    assert seen[0]["form"] == {"grant_type": ["client_credentials"], "scope": ["kafka"]}


async def test_oidc_tokens_are_cached_and_refreshed(
    token_endpoint: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = token_endpoint
    now = [0.0]
    provider = ClientCredentialsTokenProvider(
        url, "kafka-client", Secret("client-secret"), clock=lambda: now[0]
    )
    assert await provider.token() == "token-1"
    now[0] = 79.0  # expires_in 100: refreshed after 80 s
    assert await provider.token() == "token-1"
    now[0] = 81.0
    assert await provider.token() == "token-2"
    assert len(seen) == 2
    assert "client-secret" not in repr(provider)


async def test_a_refused_client_secret_is_named_never_shown(
    token_endpoint: tuple[str, list[dict[str, Any]]],
) -> None:
    url, _ = token_endpoint
    provider = kafka_options(oidc_settings(url, secret="wrong-secret"))["sasl_oauth_token_provider"]
    with pytest.raises(BrokerError) as caught:
        await provider.token()
    assert "answered 401" in str(caught.value)
    assert "RELAY_KAFKA_OAUTH_CLIENT_ID" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)


class StaticTokens(AbstractTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        return "from-a-plugin"


def static_tokens(settings: Settings) -> AbstractTokenProvider:
    return StaticTokens()


async def test_a_pluggable_token_provider() -> None:
    settings = load_settings(
        {
            "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RELAY_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER": "tests.test_kafka_security:static_tokens",
        }
    )
    async with clients_of(settings) as clients:
        request, _ = await connection_of(clients[0]).authenticator_oauth().step(None)
    assert request == b"n,,\x01auth=Bearer from-a-plugin\x01\x01"
    broken = load_settings({}, kafka_oauth_token_provider="tests.nowhere:factory")
    with pytest.raises(ConfigError, match="RELAY_KAFKA_OAUTH_TOKEN_PROVIDER"):
        from relay.kafka_oauth import token_provider

        token_provider(broken)


async def test_msk_iam_tokens_are_signed_for_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aws_msk_iam_sasl_signer", reason="the msk extra is not installed")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = load_settings(
        {
            "RELAY_KAFKA_BOOTSTRAP": "b-1.msk.example:9098",
            "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RELAY_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER": "aws-msk-iam",
            "RELAY_KAFKA_AWS_REGION": "eu-west-1",
        }
    )
    provider = kafka_options(settings)["sasl_oauth_token_provider"]
    assert isinstance(provider, MskIamTokenProvider)
    token = await provider.token()
    signed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = parse_qs(urlsplit(signed).query)
    assert urlsplit(signed).hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert "AKIAIOSFODNN7EXAMPLE/" in query["X-Amz-Credential"][0]
    assert await provider.token() == token  # cached until near its expiry


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "RELAY_KAFKA_SASL_MECHANISM"),
        ({"RELAY_KAFKA_SECURITY_PROTOCOL": "TLS"}, "RELAY_KAFKA_SECURITY_PROTOCOL"),
        ({"RELAY_KAFKA_SASL_MECHANISM": "PLAIN"}, "RELAY_KAFKA_SASL_MECHANISM"),
        ({"RELAY_KAFKA_SASL_MECHANISM": "GSSAPI"}, "RELAY_KAFKA_SASL_MECHANISM"),
        (
            {"RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RELAY_KAFKA_SASL_MECHANISM": "PLAIN"},
            "RELAY_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "RELAY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "RELAY_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            },
            "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER",
        ),
        ({"RELAY_KAFKA_OAUTH_TOKEN_PROVIDER": "aws-msk-iam"}, "RELAY_KAFKA_AWS_REGION"),
        (
            {"RELAY_KAFKA_OAUTH_TOKEN_PROVIDER": "not a provider"},
            "RELAY_KAFKA_OAUTH_TOKEN_PROVIDER",
        ),
        (
            {"RELAY_KAFKA_OAUTH_TOKEN_URL": "http://idp.example/token"},
            "RELAY_KAFKA_OAUTH_TOKEN_URL",
        ),
        ({"RELAY_KAFKA_SSL_CA_FILE": __file__}, "RELAY_KAFKA_SSL_CA_FILE"),
        ({"RELAY_KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "RELAY_KAFKA_SSL_CA_FILE"),
    ],
)
def test_inconsistent_kafka_settings_are_named(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert setting in {p.setting for p in caught.value.problems}, caught.value


def test_a_ca_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is no certificate")
    settings = load_settings(
        {"RELAY_KAFKA_SECURITY_PROTOCOL": "SSL", "RELAY_KAFKA_SSL_CA_FILE": str(not_pem)}
    )
    with pytest.raises(ConfigError, match="RELAY_KAFKA_SSL_CA_FILE: is not a PEM CA bundle"):
        kafka_options(settings)


# A relay.kafka helper given the bare bootstrap string of the settings connects in plaintext.
BARE_BOOTSTRAP = re.compile(
    r"(ensure_topics|ensure_topic_like|partition_count|make_producer|make_consumer|make_admin)"
    r"\(\s*(self\.)?settings\.kafka_bootstrap\b"
)


def test_only_relay_kafka_builds_kafka_clients_and_always_from_the_settings() -> None:
    # Every client must get the security options: none may be built around relay.kafka.
    offenders = []
    for path in RELAY.rglob("*.py"):
        if path.name == "kafka.py" and path.parent == RELAY:
            continue
        text = path.read_text(encoding="utf-8")
        for client in ("AIOKafkaConsumer(", "AIOKafkaProducer(", "AIOKafkaAdminClient("):
            if client in text:
                offenders.append(f"{path.relative_to(RELAY)}: {client}")
        if "bootstrap_servers=" in text:
            offenders.append(f"{path.relative_to(RELAY)}: bootstrap_servers=")
        offenders += [
            f"{path.relative_to(RELAY)}: {m.group(0)}" for m in BARE_BOOTSTRAP.finditer(text)
        ]
    assert not offenders, offenders
