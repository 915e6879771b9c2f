"""Access withdrawn at run time (`/_sandbox/access`): a revoked token answers X's 401, a denied
account, pixel or app 403/404 with X's code, until given back; requests counted per token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from relay.xads.errors import Forbidden, NotFound, Unauthorized
from tests.mact_fixtures import EXAMPLE_EVENT, IOS_APP, relay_client
from tests.sandbox_fixtures import (
    ACCOUNT,
    CREDENTIALS,
    OTHER_PIXEL,
    PIXEL,
    Reply,
    SandboxClient,
    conversion,
    running_sandbox,
)

TOKEN = CREDENTIALS["access_token"]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    async with running_sandbox() as client:
        yield client


async def set_access(sandbox: SandboxClient, doc: Any) -> Reply:
    return await sandbox.request(
        "POST", f"{sandbox.url}/_sandbox/access", data=orjson.dumps(doc), headers={}
    )


async def must_set(sandbox: SandboxClient, doc: Any) -> dict[str, Any]:
    reply = await set_access(sandbox, doc)
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


async def test_a_revoked_token_answers_401_until_restored(sandbox: SandboxClient) -> None:
    shown = await must_set(sandbox, {"revoked_tokens": [TOKEN]})
    assert shown["revoked_tokens"] == [TOKEN] and shown["active"] is True
    async with relay_client(sandbox) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.post_web_conversions(PIXEL, [conversion()])
        assert caught.value.code == "UNAUTHORIZED_ACCESS"
        with pytest.raises(Unauthorized):
            await client.conversion_event(EXAMPLE_EVENT)
        assert (await sandbox.control("DELETE", "access")).body["active"] is False
        result = await client.post_web_conversions(PIXEL, [conversion()])
    assert result.conversions_processed == 1
    by_token = (await sandbox.stats())["requests_by_token"]
    assert by_token == {TOKEN: {"200": 1, "401": 2}}


async def test_a_denied_pixel_answers_its_status_and_code_and_nothing_else_changes(
    sandbox: SandboxClient,
) -> None:
    shown = await must_set(sandbox, {"deny": {"pixels": {PIXEL: 403}}})
    assert shown["deny"]["pixels"] == {PIXEL: {"status": 403, "code": "ACCOUNT_NOT_FOUND"}}
    async with relay_client(sandbox) as client:
        with pytest.raises(Forbidden) as caught:
            await client.post_web_conversions(PIXEL, [conversion()])
        assert caught.value.code == "ACCOUNT_NOT_FOUND"
        assert caught.value.parameter == "pixel_id"
        other = await client.post_web_conversions(OTHER_PIXEL, [conversion(event_id="p9x01")])
        assert other.conversions_processed == 1, "another pixel is not denied"
    assert (await sandbox.stats())["conversions_accepted"] == 1


async def test_denied_accounts_and_apps_answer_404_with_the_code_given(
    sandbox: SandboxClient,
) -> None:
    await must_set(
        sandbox,
        {
            "deny": {
                "accounts": {ACCOUNT: 404},
                "apps": {IOS_APP: {"status": 404, "code": "MACT_APP_NOT_FOUND"}},
            }
        },
    )
    async with relay_client(sandbox) as client:
        with pytest.raises(NotFound) as web_caught:
            await client.post_web_conversions(PIXEL, [conversion()])
        assert (web_caught.value.code, web_caught.value.parameter) == ("NOT_FOUND", "account_id")
        with pytest.raises(NotFound) as app_caught:
            await client.conversion_event(EXAMPLE_EVENT)
        assert app_caught.value.code == "MACT_APP_NOT_FOUND"
        await sandbox.control("POST", "reset")  # a reset gives everything back
        assert (await client.post_web_conversions(PIXEL, [conversion()])).conversions_processed


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "access must be a JSON object"),
        ({"revoke": []}, "unknown access field(s): revoke"),
        ({"revoked_tokens": "t"}, "revoked_tokens must be a list of access tokens"),
        ({"deny": {"campaigns": {}}}, "deny takes accounts, pixels and apps, not campaigns"),
        ({"deny": {"pixels": {PIXEL: 500}}}, f"deny.pixels.{PIXEL}: the status must be 403 or 404"),
        ({"deny": {"pixels": {PIXEL: {"status": 404, "code": ""}}}}, "the code must be"),
    ],
)
async def test_an_access_document_that_cannot_apply_is_refused(
    sandbox: SandboxClient, doc: Any, message: str
) -> None:
    reply = await set_access(sandbox, doc)
    assert reply.status == 400
    assert message in reply.text
    assert (await sandbox.control("GET", "access")).body["active"] is False
