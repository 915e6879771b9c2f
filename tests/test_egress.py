"""Egress to X: TLS verified with a custom CA, http refused off loopback, proxies honoured."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from relay.config import default_mapping_path, load_settings
from relay.errors import ConfigError
from relay.sandbox import create_app
from relay.sandbox.config import load_sandbox_config
from relay.sandbox.server import SandboxServer
from relay.xads.client import XAdsClient
from relay.xads.egress import Egress
from relay.xads.errors import TransportError
from tests.tls_fixtures import TLS_HOST, Pki, make_pki

ACCOUNT = "18ce54d4x5t"
CREDENTIALS = load_settings({"RELAY_CONFIG": str(default_mapping_path())}).credentials


async def serve(app: web.Application, context: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner


@pytest.fixture
async def https_sandbox(tmp_path: Path) -> AsyncIterator[tuple[str, Pki]]:
    """The sandbox itself serving TLS with a certificate of the test's own CA."""
    pki = make_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    runner = await serve(create_app(load_sandbox_config(None, {})), context)
    yield f"https://{TLS_HOST}:{runner.addresses[0][1]}", pki
    await runner.cleanup()


async def test_x_is_reached_over_tls_verified_against_the_ca_setting(
    https_sandbox: tuple[str, Pki],
) -> None:
    url, pki = https_sandbox
    settings = load_settings(
        {
            "RELAY_CONFIG": str(default_mapping_path()),
            "RELAY_API_BASE_URL": url,
            "RELAY_API_CA_FILE": str(pki.ca),
        }
    )
    egress = Egress.from_settings(settings)
    async with XAdsClient(url, CREDENTIALS, egress=egress) as client:
        page = await client.app_event_tags.list(ACCOUNT, count=1)
    assert len(page.data) <= 1  # an answer of X (the sandbox) to this very request


async def test_an_untrusted_certificate_is_refused(https_sandbox: tuple[str, Pki]) -> None:
    url, pki = https_sandbox
    for ca in (None, pki.other_ca):  # the system's bundle, then a CA that signed nothing here
        async with XAdsClient(
            url, CREDENTIALS, egress=Egress(ca_file=str(ca) if ca else None)
        ) as client:
            with pytest.raises(TransportError, match="Certificate") as caught:
                await client.app_event_tags.list(ACCOUNT, count=1)
        assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorCertificateError)


def test_http_is_refused_off_loopback_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="RELAY_API_BASE_URL"):
        load_settings({"RELAY_API_BASE_URL": "http://ads-api.x.com"})
    with pytest.raises(ConfigError, match="RELAY_API_BASE_URL"):
        Egress().check_url("http://sandbox.internal:8080")
    Egress().check_url("http://127.0.0.1:8080")
    Egress().check_url("http://[::1]:8080")
    Egress(allow_http=True).check_url("http://sandbox.internal:8080")
    allowed = load_settings(
        {"RELAY_API_BASE_URL": "http://sandbox.internal:8080", "RELAY_API_ALLOW_HTTP": "true"}
    )
    assert allowed.api_base_url == "http://sandbox.internal:8080"


async def test_the_proxy_variables_are_honoured(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        # A forward proxy: absolute-form request line; pass it on to the sandbox as is.
        seen.append(str(request.url))
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                sandbox.url + request.path_qs,
                headers={**request.headers},
                data=await request.read(),
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type
            )

    proxy = web.Application()
    proxy.router.add_route("*", "/{tail:.*}", forward)
    runner = await serve(proxy)
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{runner.addresses[0][1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A host no resolver knows: only the proxy can reach it.
        url = "http://x-ads.invalid"
        async with XAdsClient(url, CREDENTIALS, egress=Egress(allow_http=True)) as client:
            page = await client.app_event_tags.list(ACCOUNT, count=1)
        assert len(page.data) <= 1  # an answer of X (the sandbox) to this very request
        assert seen and seen[0].startswith("http://x-ads.invalid/12/accounts/")
    finally:
        await runner.cleanup()


async def test_timeouts_and_pool_size_come_from_the_settings() -> None:
    settings = load_settings(
        {
            "RELAY_API_CONNECT_TIMEOUT_S": "3",
            "RELAY_API_READ_TIMEOUT_S": "7",
            "RELAY_REQUEST_TIMEOUT_S": "11",
            "RELAY_API_MAX_CONNECTIONS": "5",
        }
    )
    session = Egress.from_settings(settings).session("https://ads-api.x.com")
    try:
        assert (session.timeout.connect, session.timeout.sock_read) == (3, 7)
        assert session.timeout.total == 11
        assert isinstance(session.connector, aiohttp.TCPConnector)
        assert session.connector.limit == 5
        assert not session.trust_env  # the proxy is resolved once, not per request
    finally:
        await session.close()
