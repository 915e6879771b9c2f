"""Which path a request takes through the sandbox's own server (http11.py).

The hot routes (X's conversion endpoints: what the relay and `relay bench sandbox` hit)
run their aiohttp handlers and the edge (edge.py) directly, on a `FastRequest`; every other
request, and any hot one whose target is unusual (percent-encoded, dot segments, no Host),
goes to the aiohttp application itself (aiohttp_bridge.py). The handlers are the same in
both paths, so the verdicts are too. The usual conversion_event request goes shorter still:
mact_fast.py answers it (`Router.immediate`, asked first by the server), or declines it to
this path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Final, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl._parse import query_to_pairs

from relay.sandbox import edge
from relay.sandbox.aiohttp_bridge import AiohttpBridge
from relay.sandbox.http11 import HOP_BY_HOP, Answer, HttpRequest
from relay.sandbox.mact import EVENT_PATH
from relay.sandbox.mact_fast import ConversionEventFastPath

# Route paths (aiohttp's canonical form) answered on the fast path, for POST.
HOT_ROUTES: Final = frozenset(
    {
        "/11/conversion_event",
        "/12/conversion_event",
        "/12/measurement/conversions/{pixel_id}",
    }
)
_FORBIDDEN_IN_SEGMENT: Final = frozenset("/%{}#")

logger = logging.getLogger(__name__)


class _MatchInfo(dict[str, str]):
    """aiohttp's match info as the edge reads it: the path's parameters and the route."""

    __slots__ = ("route",)

    def __init__(self, route: web.AbstractRoute, params: Mapping[str, str]):
        super().__init__(params)
        self.route = route


class FastRequest:
    """The part of aiohttp's `web.Request` that the edge and X's conversion handlers read,
    built from a parsed request without aiohttp's machinery. Anything else is not there:
    a route that needs more belongs on the aiohttp path."""

    __slots__ = (
        "_body",
        "_content_type",
        "_query",
        "_query_string",
        "_storage",
        "app",
        "headers",
        "host",
        "match_info",
        "method",
        "path",
        "raw_path",
        "transport",
    )
    scheme: Final = "http"

    def __init__(
        self,
        app: web.Application,
        request: HttpRequest,
        path: str,
        query_string: str,
        headers: CIMultiDictProxy[str],
        host: str,
        match_info: _MatchInfo,
    ):
        self.app = app
        self.method = request.method
        self.raw_path = request.target
        self.path = path
        self.headers = headers
        self.host = host
        self.match_info = match_info
        self.transport = request.transport
        self._body = request.body
        self._query_string = query_string
        self._query: MultiDictProxy[str] | None = None
        self._content_type: str | None = None
        self._storage: dict[Any, Any] = {}

    @property
    def query(self) -> MultiDictProxy[str]:
        """As aiohttp parses it (yarl's own parser)."""
        if self._query is None:
            # What `URL.query` does, without building the URL first.
            self._query = MultiDictProxy(MultiDict(query_to_pairs(self._query_string)))
        return self._query

    @property
    def content_type(self) -> str:
        if self._content_type is None:
            raw = self.headers.get("Content-Type")
            self._content_type = (
                raw.partition(";")[0].strip().lower() if raw else "application/octet-stream"
            )
        return self._content_type

    async def read(self) -> bytes:
        return self._body

    async def text(self) -> str:
        """As aiohttp decodes it: the charset the Content-Type names, else UTF-8."""
        raw = self.headers.get("Content-Type", "")
        charset = "utf-8"
        for param in raw.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                charset = value.strip().strip('"') or charset
        return self._body.decode(charset)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._storage.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return self._storage[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._storage[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._storage[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._storage

    def __iter__(self) -> Iterator[Any]:
        return iter(self._storage)


class TooLargeRequest(FastRequest):
    """A hot request whose body passed the limit: reading it fails as in aiohttp."""

    __slots__ = ("_limit",)

    def set_limit(self, limit: int) -> None:
        self._limit = limit

    async def read(self) -> bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=self._limit, actual_size=self._limit + 1)

    async def text(self) -> str:
        await self.read()
        return ""


def _decoded_headers(request: HttpRequest) -> CIMultiDictProxy[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers:
        headers.add(
            name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")
        )
    return CIMultiDictProxy(headers)


def answer_of(response: web.StreamResponse) -> Answer:
    """aiohttp's response as the server sends it."""
    body = response.body if isinstance(response, web.Response) else None
    data = bytes(body) if isinstance(body, (bytes, bytearray)) else b""
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
    return Answer(response.status, headers, data, response.reason)


def answer_of_exception(exc: web.HTTPException) -> Answer:
    headers = [(k, v) for k, v in exc.headers.items() if k.lower() not in HOP_BY_HOP]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
    return Answer(exc.status, headers, (exc.text or "").encode(), exc.reason)


class Router:
    """The `Dispatch` of http11.py for the sandbox's aiohttp application `app`, set up
    (`runner.server`: the aiohttp server the bridge hands the other requests to)."""

    def __init__(self, app: web.Application, server: web.Server, max_body_bytes: int):
        self._app = app
        self._bridge = AiohttpBridge(server)
        self._max_body_bytes = max_body_bytes
        self._conversion_event = ConversionEventFastPath(app)
        self._exact: dict[str, web.AbstractRoute] = {}
        self._prefixed: dict[str, tuple[str, web.AbstractRoute]] = {}
        for resource in app.router.resources():
            if resource.canonical not in HOT_ROUTES:
                continue
            for route in resource:
                if route.method != "POST":
                    continue
                head, brace, tail = resource.canonical.partition("{")
                if not brace:
                    self._exact[resource.canonical] = route
                else:  # one parameter, the last segment
                    self._prefixed[head] = (tail.rstrip("}"), route)

    def immediate(self, request: HttpRequest) -> Answer | None:
        """The usual conversion_event request's answer, from its fast path (mact_fast.py),
        before any coroutine; None for every other request (then `__call__` answers)."""
        if request.method != "POST":
            return None
        path, _, query = request.target.partition("?")
        return self._conversion_event.answer(request, query) if path == EVENT_PATH else None

    @property
    def conversion_event_answers(self) -> int:
        """Requests the conversion_event fast path answered."""
        return self._conversion_event.answered

    def fast_route(
        self, method: str, target: str, host: bytes | None
    ) -> tuple[web.AbstractRoute, dict[str, str]] | None:
        """The hot route and its path parameters when the request takes the fast path;
        None when the aiohttp application answers it."""
        if method != "POST" or not host or not target.isascii() or "#" in target:
            return None
        path = target.partition("?")[0]
        return None if "%" in path else self._hot(path)

    def _hot(self, path: str) -> tuple[web.AbstractRoute, dict[str, str]] | None:
        route = self._exact.get(path)
        if route is not None:
            return route, {}
        head, _, segment = path.rpartition("/")
        match = self._prefixed.get(head + "/")
        if (
            match is None
            or not segment
            or segment in (".", "..")
            or not _FORBIDDEN_IN_SEGMENT.isdisjoint(segment)
        ):
            return None
        return match[1], {match[0]: segment}

    async def __call__(self, request: HttpRequest) -> Answer | None:
        host = request.host
        hot = self.fast_route(request.method, request.target, host)
        if hot is None or host is None:
            return await self._bridge.answer(request)
        route, params = hot
        path, _, query_string = request.target.partition("?")
        kind = TooLargeRequest if request.body_too_large else FastRequest
        fast = kind(
            self._app,
            request,
            path,
            query_string,
            _decoded_headers(request),
            host.decode("utf-8", "surrogateescape"),
            _MatchInfo(route, params),
        )
        if isinstance(fast, TooLargeRequest):
            fast.set_limit(self._max_body_bytes)
        try:
            response = await edge.x_edge(cast(web.Request, fast), route.handler)
        except web.HTTPException as exc:
            return answer_of_exception(exc)
        if request.transport.is_closing():  # dropped (an injected fault)
            return None
        return answer_of(response)
