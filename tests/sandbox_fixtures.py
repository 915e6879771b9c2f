"""Helpers for the sandbox tests: a sandbox on a real port, a client, X's example, signing."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from relay.config import default_mapping_path, read_document
from relay.sandbox.config import SandboxConfig, SandboxPixel, load_sandbox_config
from relay.sandbox.server import SandboxServer
from relay.sandbox.state import Clock
from relay.secret import Secret
from relay.xads import oauth

DEFAULTS: Final = read_document(default_mapping_path())
CREDENTIALS: Final[dict[str, Any]] = DEFAULTS["credentials"]
# Every secret of defaults.toml: none may ever appear in a control answer.
SECRETS: Final = (
    CREDENTIALS["consumer_secret"],
    CREDENTIALS["access_token_secret"],
    *(p["pixel_token"] for p in DEFAULTS["pixels"]),
)

PIXEL: Final = "o8z6j"  # account 18ce552mlaq, events o87ne o87nf o87ng
ACCOUNT: Final = "18ce552mlaq"
OTHER_PIXEL: Final = "p1a2b"  # events p9x01 p9x02
FORBIDDEN_PIXEL: Final = "s7g8h"  # its account is not one the default token may use
EMAIL_HASH: Final = "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"
PHONE_HASH: Final = "1fa6b8d986d9b9cd01bf36951815158bbde9f520c0567c835dfe34783d0a4231"

# X's documented example (seed 004): pixel oka17 of account 18ce552mlaq, event ol288.
EXAMPLE_PIXEL: Final = "oka17"
EXAMPLE_EVENT: Final = "ol288"
EXAMPLE_REQUEST: Final[dict[str, Any]] = {
    "conversions": [
        {
            "conversion_time": "2022-02-18T01:14:00.603Z",
            "event_id": "ol288",
            "identifiers": [
                {"twclid": "23opevjt88psuo13lu8d020qkn"},
                {
                    "hashed_email": (
                        "d360d510a224510f373931ce2d6215a799f5a9c1cef221b0149b6b6b50cced62"
                    )
                },
                {"hashed_phone_number": PHONE_HASH},
                {
                    "ip_address": "1.0.0.0",
                    "user_agent": (
                        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"
                        " (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36"
                    ),
                },
            ],
            "value": "20.00",
            "number_items": 3,
            "conversion_id": "23294827",
            "description": "Pet supply purchases",
            "contents": [
                {
                    "content_id": "1",
                    "content_name": "Blankets",
                    "content_type": "Pet supplies",
                    "content_price": 100.99,
                    "num_items": 1,
                    "content_group_id": "123",
                }
            ],
        }
    ]
}

# The answer headers two sandboxes must agree on, compared by the differential tests.
ANSWER_HEADERS: Final = (
    "Content-Type",
    "x-current-api-version",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "x-account-rate-limit-limit",
    "x-account-rate-limit-remaining",
    "x-account-rate-limit-reset",
    "Retry-After",
)


async def control(url: str, method: str, name: str, doc: Any = None) -> dict[str, Any]:
    """A control endpoint's JSON answer (asserting 200)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{url}/_sandbox/{name}", json=doc) as resp,
    ):
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


def web_event_for(pixel: str, event_id: str, number: int) -> bytes:
    """A relay web input record for `pixel` with an email."""
    return orjson.dumps(
        {
            "pixel_id": pixel,
            "event_id": event_id,
            "conversion_time": "2026-11-20T10:00:00.123Z",
            "conversion_id": f"{pixel}-{number}",
            "email": f"user{number}@example.com",
        }
    )


def default_config(**changes: Any) -> SandboxConfig:
    return dataclasses.replace(load_sandbox_config(None, {}), **changes)


def example_config() -> SandboxConfig:
    """The defaults plus the pixel of X's example, in the account of X's example answer."""
    config = default_config()
    example = SandboxPixel(EXAMPLE_PIXEL, ACCOUNT, frozenset({EXAMPLE_EVENT}), Secret(""))
    return dataclasses.replace(config, pixels={**config.pixels, EXAMPLE_PIXEL: example})


def conversion(**changes: Any) -> dict[str, Any]:
    """A valid conversion for PIXEL; a change to None removes the field."""
    result: dict[str, Any] = {
        "conversion_time": "2026-11-20T10:00:00.123Z",
        "event_id": "o87ne",
        "identifiers": [{"hashed_email": EMAIL_HASH}, {"twclid": "23opevjt88psuo13lu8d020qkn"}],
        "conversion_id": "order-1",
        "value": "20.00",
        "price_currency": "USD",
        "number_items": 2,
        "description": "Pet supplies",
        "contents": [{"content_id": "1", "content_price": "10.00", "num_items": 2}],
    }
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def example_request() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE_REQUEST)


def oauth_header(
    method: str,
    url: str,
    *,
    consumer_key: str = CREDENTIALS["consumer_key"],
    consumer_secret: str = CREDENTIALS["consumer_secret"],
    token: str = CREDENTIALS["access_token"],
    token_secret: str = CREDENTIALS["access_token_secret"],
    form: Mapping[str, str] | None = None,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    return oauth.authorization_header(
        method,
        url,
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        token=token,
        token_secret=token_secret,
        form=form,
        nonce=nonce,
        timestamp=timestamp,
    )


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def body(self) -> Any:
        return orjson.loads(self.text)

    @property
    def codes(self) -> list[tuple[str, str | None]]:
        """(code, parameter) of each of X's errors."""
        return [(e["code"], e.get("parameter")) for e in self.body["errors"]]


class SandboxClient:
    """Calls one running sandbox over HTTP, signing with the default credentials at the
    sandbox's time (X refuses signatures more than 300 s off its clock)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, clock: Clock = time.time):
        self.url = url
        self.session = session
        self.clock = clock

    def conversions_url(self, pixel_id: str = PIXEL, query: str = "") -> str:
        return f"{self.url}/12/measurement/conversions/{pixel_id}{query}"

    async def request(
        self, method: str, url: str, *, data: bytes | str | None = None, headers: Mapping[str, str]
    ) -> Reply:
        async with self.session.request(method, url, data=data, headers=headers) as resp:
            return Reply(resp.status, resp.headers, await resp.text())

    async def post_conversions(
        self,
        body: Any,
        pixel_id: str = PIXEL,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """POST a body (an object as JSON, or raw bytes), OAuth-signed unless headers given."""
        url = self.conversions_url(pixel_id)
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {"Content-Type": "application/json"}
        sent.update(
            headers
            if headers is not None
            else {"Authorization": oauth_header("POST", url, timestamp=int(self.clock()))}
        )
        return await self.request("POST", url, data=data, headers=sent)

    async def control(self, method: str, name: str, **query: str | int) -> Reply:
        url = f"{self.url}/_sandbox/{name}"
        async with self.session.request(method, url, params=query) as resp:
            return Reply(resp.status, resp.headers, await resp.text())

    async def journal(self, **query: str | int) -> dict[str, Any]:
        reply = await self.control("GET", "journal", **query)
        body: dict[str, Any] = reply.body
        return body

    async def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.control("GET", "stats")).body
        return body


@contextlib.asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, *, clock: Clock = time.time
) -> AsyncIterator[SandboxClient]:
    server = SandboxServer(config or default_config(), clock=clock)
    async with server, aiohttp.ClientSession() as session:
        yield SandboxClient(server.url, session, clock)
