"""OAuth 1.0a HMAC-SHA1 request signing (RFC 5849), as X's Ads API expects it.

The base string covers the method, the URL without its query, and every oauth_*, query and
form-body parameter; a JSON body is not part of it (RFC 5849 3.4.1.3.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

SIGNATURE_METHOD: Final = "HMAC-SHA1"
OAUTH_VERSION: Final = "1.0"


def pct(value: str) -> str:
    """RFC 3986 percent-encoding: only unreserved characters stay as they are."""
    return quote(value, safe="-._~")


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
    encoded = sorted((pct(k), pct(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in encoded)
    return "&".join((method.upper(), pct(base_url(url)), pct(normalized)))


def sign(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{pct(consumer_secret)}&{pct(token_secret)}".encode()
    digest = hmac.new(key, base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


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
