"""The async X Ads API client: OAuth 1.0a signing, one typed method per endpoint.

aiohttp and transport errors are translated into `relay.xads.errors` here and nowhere else.

A request waits for one of the pool's connections here, never inside aiohttp: the caller's
`admit` check runs once the request holds a connection slot, just before it is signed and
written, so that what the caller learned meanwhile (a 429 of the same account, say) still
stops it (`NotSent`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, cast

import aiohttp
import orjson

from relay.config import Credentials, Secret
from relay.errors import ClosedError
from relay.xads import oauth
from relay.xads.egress import Egress
from relay.xads.errors import (
    ApiError,
    NotSent,
    RateLimitInfo,
    TransportError,
    error_for_status,
)
from relay.xads.models import (
    AppEventProviderConfiguration,
    AppEventTag,
    AppList,
    ConversionEventParams,
    Json,
)

API_VERSION: Final = "12"
DEFAULT_TIMEOUT_S: Final = 30.0
USER_AGENT: Final = "conversion-relay/0.1"


@dataclass(frozen=True, slots=True)
class WebConversionsResult:
    """X's answer to a web conversions batch."""

    conversions_processed: int
    debug_id: str | None
    account_id: str | None
    rate_limit: RateLimitInfo


@dataclass(frozen=True, slots=True)
class AppConversionResult:
    """X's answer to one app conversion (recorded or checked): `data` and the headers."""

    data: Json
    rate_limit: RateLimitInfo


T = TypeVar("T")
# Asked just before the request is written: False withholds it (NotSent).
Admit = Callable[[], bool]

ParamValue = str | int | bool | Sequence[str] | None


def query_params(params: Mapping[str, ParamValue]) -> dict[str, str]:
    """X's query conventions: booleans as true/false, lists comma-separated, None left out."""
    result: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            result[key] = "true" if value else "false"
        elif isinstance(value, str | int):
            result[key] = str(value)
        else:
            result[key] = ",".join(value)
    return result


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list endpoint."""

    data: list[T]
    next_cursor: str | None
    total_count: int | None
    request: Json


class AccountResource(Generic[T]):
    """A management resource under `/<version>/accounts/:account_id/<name>`."""

    def __init__(self, client: XAdsClient, version: str, name: str, ids_param: str):
        self._client = client
        self._version = version
        self.name = name
        self.ids_param = ids_param

    def _path(self, account_id: str, item_id: str | None = None) -> str:
        path = f"/{self._version}/accounts/{account_id}/{self.name}"
        return f"{path}/{item_id}" if item_id else path

    async def list(
        self,
        account_id: str,
        *,
        ids: Sequence[str] | None = None,
        count: int | None = None,
        cursor: str | None = None,
        sort_by: str | None = None,
        with_deleted: bool | None = None,
        with_total_count: bool | None = None,
    ) -> Page[T]:
        params = query_params(
            {
                self.ids_param: ids,
                "count": count,
                "cursor": cursor,
                "sort_by": sort_by,
                "with_deleted": with_deleted,
                "with_total_count": with_total_count,
            }
        )
        body = await self._client.call("GET", self._path(account_id), params)
        return Page(
            data=cast(list[T], body.get("data") or []),
            next_cursor=body.get("next_cursor"),
            total_count=body.get("total_count"),
            request=body.get("request") or {},
        )

    async def iterate(
        self,
        account_id: str,
        *,
        count: int | None = None,
        sort_by: str | None = None,
        with_deleted: bool | None = None,
    ) -> AsyncIterator[T]:
        """Every item, following `next_cursor` page by page."""
        cursor: str | None = None
        while True:
            page = await self.list(
                account_id, count=count, cursor=cursor, sort_by=sort_by, with_deleted=with_deleted
            )
            for item in page.data:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def get(self, account_id: str, item_id: str, *, with_deleted: bool | None = None) -> T:
        params = query_params({"with_deleted": with_deleted})
        body = await self._client.call("GET", self._path(account_id, item_id), params)
        return cast(T, body.get("data"))

    async def create(self, account_id: str, **params: ParamValue) -> T:
        body = await self._client.call("POST", self._path(account_id), query_params(params))
        return cast(T, body.get("data"))

    async def delete(self, account_id: str, item_id: str) -> T:
        body = await self._client.call("DELETE", self._path(account_id, item_id))
        return cast(T, body.get("data"))


class XAdsClient:
    """One pooled HTTP session to the X Ads API (or the sandbox) for one set of credentials."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 32,
        pixel_tokens: Mapping[str, Secret] | None = None,
        egress: Egress | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.pixel_tokens = dict(pixel_tokens or {})
        # TLS, proxies, timeouts and pool size (Egress.from_settings in the relay).
        self._egress = egress or Egress(total_timeout_s=timeout_s, max_connections=max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._signer: tuple[Credentials, oauth.Signer] | None = None
        # One per pooled connection: requests wait here, where `admit` can still stop them.
        self._wire = asyncio.Semaphore(self._egress.max_connections)
        self._closed = False
        self.app_event_tags = AccountResource[AppEventTag](
            self, API_VERSION, "app_event_tags", "app_event_tag_ids"
        )
        self.app_lists = AccountResource[AppList](self, API_VERSION, "app_lists", "app_list_ids")
        # X documents this one under version 11 only.
        self.provider_configs = AccountResource[AppEventProviderConfiguration](
            self, "11", "app_event_provider_configurations", "ids"
        )

    async def __aenter__(self) -> XAdsClient:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def open(self) -> None:
        if self._closed:
            raise ClosedError("XAdsClient is closed")
        if self._session is None:
            self._session = self._egress.session(self.base_url, headers={"User-Agent": USER_AGENT})

    async def close(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post_web_conversions(
        self,
        pixel_id: str,
        conversions: Sequence[Mapping[str, Any]],
        *,
        use_pixel_token: bool = False,
    ) -> WebConversionsResult:
        """POST /12/measurement/conversions/:pixel_id (up to 500 conversions, all or nothing)."""
        body = orjson.dumps({"conversions": list(conversions)})
        return await self.post_web_conversions_body(pixel_id, body, use_pixel_token=use_pixel_token)

    async def post_web_conversions_body(
        self,
        pixel_id: str,
        body: bytes,
        *,
        use_pixel_token: bool = False,
        admit: Admit | None = None,
    ) -> WebConversionsResult:
        """The same with the JSON body ready (the relay joins its payloads as bytes)."""
        path = f"/{API_VERSION}/measurement/conversions/{pixel_id}"
        pixel_token = self.pixel_tokens.get(pixel_id) if use_pixel_token else None
        status, headers, answer = await self._request(
            "POST", path, raw_body=body, pixel_token=pixel_token, admit=admit
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        request = answer.get("request", {}) if isinstance(answer, dict) else {}
        params = request.get("params", {}) if isinstance(request, dict) else {}
        if not isinstance(data, dict):
            raise ApiError("success answer without data", status=status)
        return WebConversionsResult(
            conversions_processed=int(data.get("conversions_processed", 0)),
            debug_id=data.get("debug_id"),
            account_id=params.get("account_id") if isinstance(params, dict) else None,
            rate_limit=RateLimitInfo.from_headers(headers),
        )

    async def record_conversion_event(
        self, params: Mapping[str, Any], *, admit: Admit | None = None
    ) -> AppConversionResult:
        """POST /12/conversion_event with the rate-limit headers of X's answer."""
        return await self._app_call("POST", f"/{API_VERSION}/conversion_event", params, admit)

    async def check_conversion_attribution(
        self, params: Mapping[str, Any], *, admit: Admit | None = None
    ) -> AppConversionResult:
        """GET /12/conversion_attribution with the rate-limit headers of X's answer."""
        return await self._app_call("GET", f"/{API_VERSION}/conversion_attribution", params, admit)

    async def _app_call(
        self, method: str, path: str, params: Mapping[str, Any], admit: Admit | None
    ) -> AppConversionResult:
        _, headers, body = await self._request(
            method, path, params=query_params(params), admit=admit
        )
        data = body.get("data") if isinstance(body, dict) else None
        return AppConversionResult(
            data=data if isinstance(data, dict) else {},
            rate_limit=RateLimitInfo.from_headers(headers),
        )

    async def conversion_event(self, params: ConversionEventParams) -> Json:
        """POST /12/conversion_event: record one app conversion; X answers its attribution."""
        body = await self.call(
            "POST", f"/{API_VERSION}/conversion_event", query_params(cast(Json, params))
        )
        return cast(Json, body.get("data") or {})

    async def conversion_attribution(self, params: ConversionEventParams) -> Json:
        """GET /12/conversion_attribution: the attribution X would claim, recording nothing."""
        body = await self.call(
            "GET", f"/{API_VERSION}/conversion_attribution", query_params(cast(Json, params))
        )
        return cast(Json, body.get("data") or {})

    async def call(self, method: str, path: str, params: Mapping[str, str] | None = None) -> Json:
        """One signed request with query parameters; returns X's JSON body."""
        _, _, body = await self._request(method, path, params=params)
        if not isinstance(body, dict):
            raise ApiError(f"{method} {path}: answer is not a JSON object")
        return body

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        raw_body: bytes | None = None,
        pixel_token: Secret | None = None,
        admit: Admit | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        url = self.base_url + path
        # RFC 3986 encoding: the query as sent is the query as signed, encoded once.
        query = [(oauth.pct(k), oauth.pct(v)) for k, v in params.items()] if params else []
        data = raw_body if json_body is None else orjson.dumps(json_body)
        async with self._wire:
            if self._session is None:
                raise ClosedError("XAdsClient is not open")
            if admit is not None and not admit():
                raise NotSent(f"{method} {path}")
            return await self._send(method, path, url, query, data, pixel_token)

    async def _send(
        self,
        method: str,
        path: str,
        url: str,
        query: list[tuple[str, str]],
        data: bytes | None,
        pixel_token: Secret | None,
    ) -> tuple[int, Mapping[str, str], Any]:
        assert self._session is not None
        headers: dict[str, str] = {}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if pixel_token:
            headers["X-Pixel-Token"] = pixel_token.reveal()
        else:
            headers["Authorization"] = self._signer_now().header(method, url, query)
        if query:
            url += "?" + "&".join([f"{k}={v}" for k, v in query])
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status, resp_headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except TimeoutError as exc:
            raise TransportError(f"{method} {path} timed out") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{method} {path} failed: {exc.__class__.__name__}") from exc
        body = _decode(raw)
        if status >= 400:
            raise _error(status, resp_headers, body)
        return status, resp_headers, body

    def _signer_now(self) -> oauth.Signer:
        """The signer of the current credentials (built again when they are replaced)."""
        creds = self.credentials
        if self._signer is None or self._signer[0] is not creds:
            signer = oauth.Signer(
                creds.consumer_key,
                creds.consumer_secret.reveal(),
                creds.access_token,
                creds.access_token_secret.reveal(),
            )
            self._signer = (creds, signer)
        return self._signer[1]


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None  # some X errors have a non-JSON body: the status decides


def _error(status: int, headers: Mapping[str, str], body: Any) -> ApiError:
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    return error_for_status(status)(
        str(first.get("message") or f"HTTP {status}"),
        status=status,
        code=first.get("code"),
        parameter=first.get("parameter"),
        errors=errors if isinstance(errors, list) else [],
        rate_limit=RateLimitInfo.from_headers(headers),
    )
