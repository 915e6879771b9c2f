"""OAuth 1.0a HMAC-SHA1 verification written from RFC 5849 alone, for the sandbox.

The sandbox judges the relay's signer, so it must not share its code: nothing here comes
from `relay.xads`. The steps, by section of RFC 5849:

- 3.5.1  the `Authorization: OAuth` header: comma-separated `name="value"` pairs, both
         percent-encoded; `realm` is not a protocol parameter.
- 3.4.1.3.1  the parameters: the header's (without `oauth_signature`), the query's and an
         `application/x-www-form-urlencoded` body's, each decoded as forms are (`+` is a space).
- 3.4.1.3.2  each name and value encoded per 3.6 (only ALPHA, DIGIT, `-._~` stay as they
         are), sorted by name then value, joined as `name=value` with `&`.
- 3.4.1.2  the base string URI: scheme and host lower-case, the port only when it is not the
         scheme's default, the path as sent, no query.
- 3.4.1.1  `METHOD&encode(base URI)&encode(normalized parameters)`.
- 3.4.2  HMAC-SHA1 keyed by `encode(consumer secret)&encode(token secret)`, base64.

Encoding a value costs a `quote` call; the same query values come back request after
request (an app id, a conversion type), so their encodings are cached, with a bound. The
normalized parameters are already encoded: encoding them once more only turns `%`, `&` and
`=` into escapes, which three replacements do without a `quote` of the whole string.
"""

from __future__ import annotations

import base64
import functools
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import quote, unquote, unquote_plus

UNRESERVED: Final = "-._~"  # with ALPHA and DIGIT, what RFC 5849 3.6 leaves unencoded
HMAC_SHA1: Final = "HMAC-SHA1"
VERSION: Final = "1.0"
_SCHEME: Final = "OAuth "
_PAIR: Final = re.compile(r'([^=\s,]+)\s*=\s*"([^"]*)"')
# The whole header after the scheme: name="value" pairs separated by commas.
_PAIRS: Final = re.compile(r'\s*(?:[^=\s,]+\s*=\s*"[^"]*"\s*(?:,\s*|$))*')
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
_CACHE_SIZE: Final = 8192
_ALREADY_ENCODED: Final = re.compile(r"[A-Za-z0-9._~-]*", re.ASCII)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def encode(text: str) -> str:
    """RFC 5849 3.6 percent-encoding of UTF-8 text."""
    return quote(text, safe=UNRESERVED)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _form_component(raw: str) -> str:
    """A raw `application/x-www-form-urlencoded` name or value, as RFC 5849 encodes it."""
    if _ALREADY_ENCODED.fullmatch(raw) is not None:
        return raw  # only unreserved characters: decoding and encoding give it back
    return encode(unquote_plus(raw))


def _decode(text: str) -> str:
    return unquote(text) if "%" in text else text


def parse_header(value: str) -> dict[str, str] | None:
    """The protocol parameters of an `OAuth ...` header; None when it is not one, or when a
    parameter repeats (RFC 5849 3.5.1 allows each once)."""
    if not value.startswith(_SCHEME):
        return None
    rest = value[len(_SCHEME) :]
    if _PAIRS.fullmatch(rest) is None:
        return None
    pairs = _PAIR.findall(rest)
    params = {_decode(name): _decode(raw) for name, raw in pairs}
    if len(params) != len(pairs):
        return None
    params.pop("realm", None)  # not a protocol parameter
    return params


def encoded_form(raw: str) -> list[tuple[str, str]]:
    """`a=1&b=%20` -> its pairs, each part already encoded per RFC 5849 3.6."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_form_component(name), _form_component(value)))
    return pairs


def base_uri(scheme: str, host: str, path: str) -> str:
    """RFC 5849 3.4.1.2 from what arrived: the scheme, the Host header, the raw path."""
    scheme = scheme.lower()
    host = host.lower()
    name, colon, port = host.rpartition(":")
    if colon and "]" not in port and port == _DEFAULT_PORTS.get(scheme):
        host = name
    return f"{scheme}://{host}{path or '/'}"


def base_string(
    method: str,
    uri: str,
    protocol: Iterable[tuple[str, str]],
    encoded: Sequence[tuple[str, str]],
) -> str:
    """RFC 5849 3.4.1.1. `protocol` holds decoded header parameters (no signature),
    `encoded` the query and form pairs as `encoded_form` gives them."""
    pairs = [(encode(k), encode(v)) for k, v in protocol]
    pairs.extend(encoded)
    pairs.sort()
    normalized = "&".join([f"{k}={v}" for k, v in pairs])
    escaped = normalized.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
    return f"{method.upper()}&{encode(uri)}&{escaped}"


def signing_key(consumer_secret: str, token_secret: str) -> bytes:
    return f"{encode(consumer_secret)}&{encode(token_secret)}".encode()


def hmac_sha1(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.digest(key, text.encode(), "sha1")).decode()


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
