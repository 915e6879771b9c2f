"""How the relay's HTTP session to X is opened: TLS verified, proxies honoured, bounded.

Certificates are always verified (against `RELAY_API_CA_FILE`, else the system's bundle, e.g.
for a TLS-inspecting egress proxy); `http://` is refused for a host other than loopback
unless `RELAY_API_ALLOW_HTTP` says so; `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` are honoured
(read once, when the session opens: every request of a session goes to one host, and aiohttp's
`trust_env` would look them up, and read ~/.netrc, in a thread for each request); connect,
read and total timeouts and the pool size are bounded.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from relay.config import is_loopback
from relay.errors import ConfigError, Problem

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

    from relay.config import Settings


@functools.lru_cache(maxsize=8)
def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    # Loading a CA bundle takes tens of milliseconds: the start-up check and every session
    # with the same bundle share one context (read-only once made).
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True, slots=True)
class Egress:
    """The connection rules of one HTTP session to X."""

    total_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_connections: int = 32
    ca_file: str | None = None
    allow_http: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Egress:
        return cls(
            total_timeout_s=settings.request_timeout_s,
            connect_timeout_s=settings.api_connect_timeout_s,
            read_timeout_s=settings.api_read_timeout_s,
            max_connections=settings.api_max_connections,
            ca_file=settings.api_ca_file,
            allow_http=settings.api_allow_http,
        )

    def check_url(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and (self.allow_http or is_loopback(parts.hostname)):
            return
        raise ConfigError(
            problems=[
                Problem(
                    "RELAY_API_BASE_URL",
                    "only https:// (http:// on loopback, or with RELAY_API_ALLOW_HTTP=true)",
                )
            ]
        )

    def ssl_context(self) -> ssl.SSLContext:
        try:
            return _verifying_context(self.ca_file)
        except (ssl.SSLError, OSError, ValueError):
            raise ConfigError(
                problems=[Problem("RELAY_API_CA_FILE", "is not a readable PEM CA bundle")]
            ) from None

    def session(
        self, base_url: str, *, headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientSession:
        """A pooled session for `base_url`; call inside the event loop."""
        import aiohttp

        self.check_url(base_url)
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=self.max_connections,
            ssl=self.ssl_context(),
        )
        timeout = aiohttp.ClientTimeout(
            total=self.total_timeout_s,
            connect=self.connect_timeout_s,
            sock_read=self.read_timeout_s,
        )
        proxy, proxy_auth = env_proxy(base_url)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=headers,
            proxy=proxy,
            proxy_auth=proxy_auth,
        )


def env_proxy(base_url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for `base_url` (none when NO_PROXY excludes its host),
    with its credentials (from the proxy URL or ~/.netrc), as aiohttp's `trust_env` finds it."""
    from aiohttp.helpers import get_env_proxy_for_url  # imported late: see `relay.xads`
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(base_url))
    except LookupError:
        return None, None
