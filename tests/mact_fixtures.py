"""Helpers for the MACT, limits and faults tests: X's example, signed calls, the relay's client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final
from urllib.parse import urlencode

import orjson

from relay.config import Credentials, Secret
from relay.xads.client import XAdsClient
from relay.xads.models import ConversionEventParams
from tests.sandbox_fixtures import CREDENTIALS, Reply, SandboxClient, oauth_header

EVENT: Final = "/12/conversion_event"
ATTRIBUTION: Final = "/12/conversion_attribution"
IOS_APP: Final = "333903271"  # account 18ce54d4x5t
ANDROID_APP: Final = "com.vine.android"  # account 18ce54d4x5t
APP_ACCOUNT: Final = "18ce54d4x5t"
FORBIDDEN_APP: Final = "com.example.forbidden"  # account 18ce5600zzz, not the token's

# X's documented example request (seed 000), attributed by the first engagement of
# defaults.toml (a click on 2013-04-16 at 06:59:00.123Z).
EXAMPLE_PARAMS: Final[dict[str, str]] = {
    "app_id": IOS_APP,
    "os_type": "IOS",
    "hashed_device_id": "ABCD1234XYZ",
    "conversion_type": "INSTALL",
    "conversion_time": "2013-04-16T07:00:00.123Z",
    "click_window": "14",
    "view_through_window": "1",
}
EXAMPLE_EVENT: Final[ConversionEventParams] = {
    "app_id": IOS_APP,
    "os_type": "IOS",
    "hashed_device_id": "ABCD1234XYZ",
    "conversion_type": "INSTALL",
    "conversion_time": "2013-04-16T07:00:00.123Z",
    "click_window": 14,
    "view_through_window": 1,
}
EXAMPLE_ATTRIBUTION: Final[dict[str, Any]] = {
    "country_code": "US",
    "engagement_time": "2013-04-16T06:59:00.123Z",
    "engagement_type": "CLICK",
    "attribution_type": "PROMOTED",
    "promoted_properties": {
        "campaign_id": "4ns44",
        "line_item_id": "3x44d",
        "account_id": APP_ACCOUNT,
        "line_item_objective": "APP_INSTALLS",
        "campaign_name": None,
        "publisher_app_id": IOS_APP,
    },
    "tweet_id": "11434635565377600",
}


def app_params(**changes: str | None) -> dict[str, str]:
    """X's example request, changed; a change to None removes the parameter."""
    params = dict(EXAMPLE_PARAMS)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def engagement(**changes: Any) -> dict[str, Any]:
    """An engagement as `POST /_sandbox/engagements` takes it."""
    result: dict[str, Any] = {
        "hashed_device_id": "device-1",
        "app_id": IOS_APP,
        "engagement_type": "CLICK",
        "engagement_time": "2026-11-10T10:00:00.000Z",
        "campaign_id": "c1",
        "line_item_id": "l1",
        "account_id": APP_ACCOUNT,
        "tweet_id": "1",
        "campaign_name": "Spring",
    }
    result.update(changes)
    return result


async def call(
    sandbox: SandboxClient,
    path: str,
    params: Mapping[str, str] | list[tuple[str, str]],
    *,
    method: str | None = None,
    authorization: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One MACT call with query parameters, OAuth-signed at the sandbox's time."""
    method = method or ("GET" if path == ATTRIBUTION else "POST")
    url = f"{sandbox.url}{path}?{urlencode(params)}"
    sent = dict(headers or {})
    if authorization is None and headers is None:
        authorization = oauth_header(method, url, timestamp=int(sandbox.clock()))
    if authorization is not None:
        sent["Authorization"] = authorization
    return await sandbox.request(method, url, headers=sent)


async def add_engagements(sandbox: SandboxClient, *engagements: dict[str, Any]) -> None:
    reply = await sandbox.request(
        "POST",
        f"{sandbox.url}/_sandbox/engagements",
        data=orjson.dumps(list(engagements)),
        headers={},
    )
    assert reply.status == 200, reply.text


async def app_journal(sandbox: SandboxClient) -> dict[str, Any]:
    return await sandbox.journal(kind="app")


@contextlib.asynccontextmanager
async def relay_client(
    sandbox: SandboxClient, timeout_s: float = 10.0
) -> AsyncIterator[XAdsClient]:
    """The relay's own client, with the default credentials, against the sandbox."""
    credentials = Credentials(
        CREDENTIALS["consumer_key"],
        Secret(CREDENTIALS["consumer_secret"]),
        CREDENTIALS["access_token"],
        Secret(CREDENTIALS["access_token_secret"]),
    )
    async with XAdsClient(sandbox.url, credentials, timeout_s=timeout_s) as client:
        yield client
