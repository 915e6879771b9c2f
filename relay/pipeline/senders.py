"""One sender per kind: builds X's request from a batch, calls relay.xads, returns the answer.

- web: the payloads are ready JSON; they are joined into the request body as bytes, never
  decoded and encoded again.
- app: one `conversion_event` per conversion (or `conversion_attribution` in check mode), the
  windows filled from the account's app event tags.

Errors are X's (`relay.xads.errors.ApiError`); the policy decides what they mean. `admit`
is asked once the request holds a connection, just before it is written; when it says no,
`NotSent` is raised and X sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from relay.pipeline.app_windows import AppWindows, fill_windows
from relay.pipeline.lanes import Batch
from relay.xads.client import Admit, XAdsClient
from relay.xads.errors import RateLimitInfo

WEB_ENDPOINT: Final = "measurement/conversions"
APP_ENDPOINTS: Final = {"record": "conversion_event", "check": "conversion_attribution"}


@dataclass(frozen=True, slots=True)
class Sent:
    """X's 2xx: how many events it processed, its headers, and (app) what it answered."""

    processed: int
    rate_limit: RateLimitInfo
    params: dict[str, Any] | None = None  # app: the query parameters as sent
    answer: dict[str, Any] = field(default_factory=dict)


class Sender(Protocol):
    endpoint: str

    async def send(
        self, client: XAdsClient, batch: Batch, account: str | None, admit: Admit
    ) -> Sent: ...


class WebSender:
    endpoint = WEB_ENDPOINT

    def __init__(self, use_pixel_token: bool):
        self.use_pixel_token = use_pixel_token

    async def send(
        self, client: XAdsClient, batch: Batch, account: str | None, admit: Admit
    ) -> Sent:
        body = b'{"conversions":[' + b",".join(p.routed.payload for p in batch.items) + b"]}"
        result = await client.post_web_conversions_body(
            batch.target, body, use_pixel_token=self.use_pixel_token, admit=admit
        )
        return Sent(result.conversions_processed, result.rate_limit)


class AppSender:
    def __init__(self, windows: AppWindows, mode: str):
        self.windows = windows
        self.mode = mode
        self.endpoint = APP_ENDPOINTS[mode]

    async def send(
        self, client: XAdsClient, batch: Batch, account: str | None, admit: Admit
    ) -> Sent:
        (item,) = batch.items  # one conversion per request
        params = item.routed.payload_dict()
        tag = None
        if account is not None:
            await self.windows.ready(account)
            tag = self.windows.lookup(
                account,
                str(params.get("app_id")),
                str(params.get("os_type")),
                str(params.get("conversion_type")),
            )
        fill_windows(params, tag)
        if self.mode == "check":
            result = await client.check_conversion_attribution(params, admit=admit)
        else:
            result = await client.record_conversion_event(params, admit=admit)
        return Sent(1, result.rate_limit, params, result.data)
