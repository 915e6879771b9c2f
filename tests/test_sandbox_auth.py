"""Who may call the sandbox: OAuth 1.0a as X verifies it, X-Pixel-Token, account access."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from oauthlib.oauth1 import Client

from relay.errors import ConfigError
from relay.sandbox.config import load_sandbox_config
from tests.sandbox_fixtures import (
    CREDENTIALS,
    FORBIDDEN_PIXEL,
    OTHER_PIXEL,
    PIXEL,
    SandboxClient,
    conversion,
    oauth_header,
    running_sandbox,
)

X_401 = {
    "errors": [
        {"code": "UNAUTHORIZED_ACCESS", "message": "This request is not properly authenticated"}
    ],
    "request": {"params": {}},
}
FORM = "application/x-www-form-urlencoded"
BODY = orjson.dumps({"conversions": [conversion()]})
ENV_CREDENTIALS = {
    "RELAY_CONSUMER_KEY": "env-consumer-key",
    "RELAY_CONSUMER_SECRET": "env-consumer-secret",
    "RELAY_ACCESS_TOKEN": "2000000002-envtoken",
    "RELAY_ACCESS_TOKEN_SECRET": "env-token-secret",
}


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    async with running_sandbox() as client:
        yield client


async def post(
    sandbox: SandboxClient, url: str, headers: Mapping[str, str], body: bytes | str = BODY
) -> tuple[int, object]:
    content_type = "application/json" if isinstance(body, bytes) else FORM
    reply = await sandbox.request(
        "POST", url, data=body, headers={"Content-Type": content_type, **headers}
    )
    assert reply.headers["x-current-api-version"] == "12"
    return reply.status, reply.body


def oauthlib_header(
    url: str, *, body: str | None = None, consumer_secret: str = CREDENTIALS["consumer_secret"]
) -> str:
    client = Client(
        CREDENTIALS["consumer_key"],
        client_secret=consumer_secret,
        resource_owner_key=CREDENTIALS["access_token"],
        resource_owner_secret=CREDENTIALS["access_token_secret"],
        signature_type="AUTH_HEADER",
    )
    content_type = FORM if body is not None else "application/json"
    _, headers, _ = client.sign(
        url, http_method="POST", body=body, headers={"Content-Type": content_type}
    )
    value: str = headers["Authorization"]
    return value


async def test_relay_signature_is_accepted(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url()
    status, body = await post(sandbox, url, {"Authorization": oauth_header("POST", url)})
    assert status == 200, body
    [entry] = (await sandbox.journal())["conversions"]
    assert entry["auth"] == "oauth"


async def test_oauthlib_signature_is_accepted(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url(query="?debug=true&tag=a%20b")
    status, body = await post(sandbox, url, {"Authorization": oauthlib_header(url)})
    assert status == 200, body


async def test_oauthlib_signature_with_wrong_secret_is_refused(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url()
    header = oauthlib_header(url, consumer_secret="not-the-secret")
    assert await post(sandbox, url, {"Authorization": header}) == (401, X_401)


async def test_form_parameters_are_signed(sandbox: SandboxClient) -> None:
    # Signed form parameters pass authentication (the body is then no JSON: 400, not 401);
    # a form changed after signing does not.
    url = sandbox.conversions_url()
    form = "a=1&b=two+words"
    status, _ = await post(sandbox, url, {"Authorization": oauthlib_header(url, body=form)}, form)
    assert status == 400
    ours = oauth_header("POST", url, form={"a": "1", "b": "two words"})
    status, _ = await post(sandbox, url, {"Authorization": ours}, form)
    assert status == 400
    tampered = await post(sandbox, url, {"Authorization": ours}, "a=2&b=two+words")
    assert tampered == (401, X_401)


def with_host(url: str, netloc: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@pytest.mark.parametrize(
    "case",
    [
        "wrong consumer secret",
        "wrong token secret",
        "unknown consumer key",
        "unknown token",
        "missing header",
        "not OAuth",
        "no signature",
        "tampered query",
        "signed for another host",
        "signed for another method",
        "signed for another pixel",
        "other signature method",
    ],
)
async def test_bad_credentials_are_401_with_x_body(sandbox: SandboxClient, case: str) -> None:
    url = sandbox.conversions_url(query="?a=1")
    headers = {
        "wrong consumer secret": {"Authorization": oauth_header("POST", url, consumer_secret="x")},
        "wrong token secret": {"Authorization": oauth_header("POST", url, token_secret="x")},
        "unknown consumer key": {"Authorization": oauth_header("POST", url, consumer_key="x")},
        "unknown token": {"Authorization": oauth_header("POST", url, token="1-x")},
        "missing header": {},
        "not OAuth": {"Authorization": "Bearer abc"},
        "no signature": {
            "Authorization": oauth_header("POST", url).replace("oauth_signature=", "oauth_x=")
        },
        "tampered query": {
            "Authorization": oauth_header("POST", sandbox.conversions_url(query="?a=2"))
        },
        "signed for another host": {
            "Authorization": oauth_header("POST", with_host(url, "ads-api.x.com"))
        },
        "signed for another method": {"Authorization": oauth_header("GET", url)},
        "signed for another pixel": {
            "Authorization": oauth_header("POST", sandbox.conversions_url(OTHER_PIXEL, "?a=1"))
        },
        "other signature method": {
            "Authorization": oauth_header("POST", url).replace("HMAC-SHA1", "PLAINTEXT")
        },
    }[case]
    assert await post(sandbox, url, headers) == (401, X_401)
    assert (await sandbox.journal())["total"] == 0
    assert (await sandbox.stats())["rejected"] == {"UNAUTHORIZED_ACCESS": 1}


async def test_authentication_comes_before_the_pixel(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url("zzzzz")
    assert await post(sandbox, url, {"Authorization": 'OAuth nonsense="1"'}) == (401, X_401)


async def test_pixel_token(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url()
    status, body = await post(sandbox, url, {"X-Pixel-Token": "demo-pixel-token-o8z6j"})
    assert status == 200, body
    [entry] = (await sandbox.journal())["conversions"]
    assert entry["auth"] == "pixel_token"
    for wrong in ("demo-pixel-token-p1a2b", "demo-pixel-token-o8z6", ""):
        assert await post(sandbox, url, {"X-Pixel-Token": wrong}) == (401, X_401), wrong


async def test_oauth_wins_over_a_pixel_token(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url()
    headers = {"X-Pixel-Token": "demo-pixel-token-o8z6j", "Authorization": 'OAuth a="b"'}
    assert await post(sandbox, url, headers) == (401, X_401)


async def test_a_token_without_the_account_is_403(sandbox: SandboxClient) -> None:
    url = sandbox.conversions_url(FORBIDDEN_PIXEL)
    body = orjson.dumps({"conversions": [conversion(event_id="s1w01")]})
    status, answer = await post(sandbox, url, {"Authorization": oauth_header("POST", url)}, body)
    assert status == 403
    assert answer == {
        "errors": [{"code": "ACCOUNT_NOT_FOUND", "message": "Account 18ce5600zzz was not found"}],
        "request": {"params": {"account_id": "18ce5600zzz"}},
    }
    # The pixel's own token is not tied to a user's accounts.
    status, _ = await post(sandbox, url, {"X-Pixel-Token": "demo-pixel-token-s7g8h"}, body)
    assert status == 200


def test_relay_credentials_override_the_file() -> None:
    config = load_sandbox_config(None, {**ENV_CREDENTIALS, "RELAY_ACCOUNT_LIMIT": "1234"})
    [creds] = config.credentials
    assert creds.consumer_key == "env-consumer-key"
    assert creds.consumer_secret.reveal() == "env-consumer-secret"
    assert creds.access_token == "2000000002-envtoken"
    assert creds.access_token_secret.reveal() == "env-token-secret"
    assert "18ce5600zzz" not in creds.accounts, "the file's account list still applies"
    assert config.account_limit == 1234
    assert config.account_window_s == 900

    [default] = load_sandbox_config(None, {}).credentials
    assert default.consumer_key == CREDENTIALS["consumer_key"]


def test_incomplete_relay_credentials_are_refused() -> None:
    with pytest.raises(ConfigError, match="incomplete"):
        load_sandbox_config(None, {"RELAY_CONSUMER_KEY": "only-this"})


async def test_the_sandbox_takes_the_environment_credentials() -> None:
    async with running_sandbox(load_sandbox_config(None, ENV_CREDENTIALS)) as sandbox:
        url = sandbox.conversions_url()
        env_header = oauth_header(
            "POST",
            url,
            consumer_key=ENV_CREDENTIALS["RELAY_CONSUMER_KEY"],
            consumer_secret=ENV_CREDENTIALS["RELAY_CONSUMER_SECRET"],
            token=ENV_CREDENTIALS["RELAY_ACCESS_TOKEN"],
            token_secret=ENV_CREDENTIALS["RELAY_ACCESS_TOKEN_SECRET"],
        )
        status, body = await post(sandbox, url, {"Authorization": env_header})
        assert status == 200, body
        file_header = oauth_header("POST", url)
        assert await post(sandbox, url, {"Authorization": file_header}) == (401, X_401)


def test_a_config_file_with_its_own_world(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text(
        '[credentials]\nconsumer_key = "k"\nconsumer_secret = "s"\n'
        'access_token = "t"\naccess_token_secret = "ts"\n'
        '[[pixels]]\nid = "abc12"\naccount_id = "acct1"\nevent_ids = ["e1"]\n'
    )
    config = load_sandbox_config(path, {})
    assert set(config.accounts) == {"acct1"}
    assert config.pixels["abc12"].event_ids == frozenset({"e1"})
    [creds] = config.credentials
    assert creds.accounts == frozenset({"acct1"}), "no account list: every account"
    assert PIXEL not in config.pixels
