"""OAuth 1.0a HMAC-SHA1 request signing (RFC 5849), as X's Ads API expects it.

The base string covers the method, the URL without its query, and every oauth_*, query and
form-body parameter; a JSON body is not part of it (RFC 5849 3.4.1.3.1).

`Signer` signs every request of one set of credentials: the key and the constant parameters
are encoded once, nonces come from a pool of random bytes (one system call per 512 of them).
`authorization_header` is the same signature for one request, from scratch.
"""

from __future__ import annotations

import base64
import functools
import hmac
import os
import re
import secrets
import string
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

SIGNATURE_METHOD: Final = "HMAC-SHA1"
OAUTH_VERSION: Final = "1.0"
NONCE_BYTES: Final = 16
NONCES_PER_DRAW: Final = 512
MAX_CACHED_URLS: Final = 1024

PCT_CACHE_SIZE: Final = 4096

_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_ALL_UNRESERVED: Final = re.compile(r"[A-Za-z0-9._~-]*")
# Every other ASCII character as %XX, for str.translate (C, but a dict lookup per character:
# the faster way for short strings only).
_PCT_ASCII: Final = {c: f"%{c:02X}" for c in range(128) if chr(c) not in _UNRESERVED}
_SHORT: Final = 32


def pct(value: str) -> str:
    """RFC 3986 percent-encoding: only unreserved characters stay as they are."""
    if _ALL_UNRESERVED.fullmatch(value):  # ids, hashes, numbers: most parameter values
        return value
    return _pct_encoded(value)


# Requests repeat most values that need encoding (user agents, event names, IPv6 prefixes).
@functools.lru_cache(maxsize=PCT_CACHE_SIZE)
def _pct_encoded(value: str) -> str:
    if len(value) <= _SHORT and value.isascii():
        return value.translate(_PCT_ASCII)
    return quote(value, safe="-._~")


def pct_of_encoded(encoded: str) -> str:
    """pct() of a string made of pct() outputs joined by = and &: only %, = and & to encode."""
    return encoded.replace("%", "%25").replace("=", "%3D").replace("&", "%26")


def base_url(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, no query or fragment."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def signature_base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """METHOD&pct(base url)&pct(sorted, encoded k=v pairs joined by &)."""
    encoded = [(pct(k), pct(v)) for k, v in params]
    return encoded_base_string(method, pct(base_url(url)), encoded)


def encoded_base_string(method: str, encoded_url: str, encoded: list[tuple[str, str]]) -> str:
    """The base string from the percent-encoded base URL and parameter pairs."""
    normalized = "&".join([f"{k}={v}" for k, v in sorted(encoded)])
    return "&".join((method.upper(), encoded_url, pct_of_encoded(normalized)))


def signing_key(consumer_secret: str, token_secret: str) -> bytes:
    return f"{pct(consumer_secret)}&{pct(token_secret)}".encode()


def sign(base_string: str, consumer_secret: str, token_secret: str) -> str:
    return sign_with_key(base_string, signing_key(consumer_secret, token_secret))


def sign_with_key(base_string: str, key: bytes) -> str:
    return base64.b64encode(hmac.digest(key, base_string.encode(), "sha1")).decode()


def oauth_params(
    consumer_key: str, token: str, *, nonce: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    return {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": SIGNATURE_METHOD,
        "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "oauth_token": token,
        "oauth_version": OAUTH_VERSION,
    }


def authorization_header(
    method: str,
    url: str,
    *,
    consumer_key: str,
    consumer_secret: str,
    token: str,
    token_secret: str,
    form: Mapping[str, str] | None = None,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    """The `Authorization: OAuth ...` header value for one request.

    Query parameters are read from `url`; `form` holds urlencoded body parameters (JSON
    bodies are never signed).
    """
    oauth = oauth_params(consumer_key, token, nonce=nonce, timestamp=timestamp)
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    params = [*oauth.items(), *query, *(form or {}).items()]
    oauth["oauth_signature"] = sign(
        signature_base_string(method, url, params), consumer_secret, token_secret
    )
    return "OAuth " + ", ".join(f'{pct(k)}="{pct(v)}"' for k, v in sorted(oauth.items()))


class Nonces:
    """Random 32-hex-digit nonces, drawn from the system's random source in bulk."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = ""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(NONCE_BYTES * NONCES_PER_DRAW).hex(), 0
        self._at = at + 2 * NONCE_BYTES
        return self._pool[at : at + 2 * NONCE_BYTES]


class Signer:
    """The Authorization header of every request made with one set of credentials."""

    def __init__(self, consumer_key: str, consumer_secret: str, token: str, token_secret: str):
        self._key = signing_key(consumer_secret, token_secret)
        self._consumer_key = pct(consumer_key)
        self._token = pct(token)
        self._nonces = Nonces()
        self._encoded_urls: dict[str, str] = {}

    def header(
        self,
        method: str,
        url: str,
        encoded_query: Sequence[tuple[str, str]] = (),
        *,
        nonce: str | None = None,
        timestamp: int | None = None,
    ) -> str:
        """The header for `url` (without its query) and the query's percent-encoded pairs."""
        encoded_url = self._encoded_urls.get(url)
        if encoded_url is None:
            if len(self._encoded_urls) >= MAX_CACHED_URLS:
                self._encoded_urls.clear()
            encoded_url = self._encoded_urls[url] = pct(base_url(url))
        nonce = pct(nonce) if nonce is not None else self._nonces.next()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        pairs = [
            ("oauth_consumer_key", self._consumer_key),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", SIGNATURE_METHOD),
            ("oauth_timestamp", stamp),
            ("oauth_token", self._token),
            ("oauth_version", OAUTH_VERSION),
            *encoded_query,
        ]
        signature = sign_with_key(encoded_base_string(method, encoded_url, pairs), self._key)
        # The oauth_* parameters sorted by name, as authorization_header writes them.
        return (
            f'OAuth oauth_consumer_key="{self._consumer_key}", oauth_nonce="{nonce}", '
            f'oauth_signature="{pct(signature)}", oauth_signature_method="{SIGNATURE_METHOD}", '
            f'oauth_timestamp="{stamp}", oauth_token="{self._token}", '
            f'oauth_version="{OAUTH_VERSION}"'
        )


def parse_authorization_header(value: str) -> dict[str, str]:
    """`OAuth k="v", ...` -> {k: v} (decoded). Raises ValueError when it is not OAuth."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "oauth":
        raise ValueError("not an OAuth authorization header")
    result: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"malformed OAuth parameter {item!r}")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]

        result[unquote(key.strip())] = unquote(raw)
    return result
