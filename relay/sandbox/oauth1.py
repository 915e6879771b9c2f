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
- 3.4.2  HMAC-SHA1 keyed by `encode(consumer secret)&encode(token secret)`, base64. The
         HMAC is RFC 2104's: SHA-1 of the outer pad and of the inner pad's SHA-1; the padded
         keys' hash states are kept per key (the configured tokens are few), so that a
         signature costs two copies of them rather than setting the key up again.

Encoding a value costs a `quote` call; the same query values come back request after
request (an app id, a conversion type), so their encodings are cached, with a bound. The
normalized parameters are already encoded: encoding them once more only turns `%`, `&` and
`=` into escapes, which three replacements do without a `quote` of the whole string.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import quote, unquote, unquote_plus

UNRESERVED: Final = "-._~"  # with ALPHA and DIGIT, what RFC 5849 3.6 leaves unencoded
HMAC_SHA1: Final = "HMAC-SHA1"
VERSION: Final = "1.0"
_SCHEME: Final = "OAuth "
# One name="value" pair of the header after the scheme, with the comma after it (or the end).
_ITEM: Final = re.compile(r'\s*([^=\s,]+)\s*=\s*"([^"]*)"\s*(?:,\s*|$)')
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
_CACHE_SIZE: Final = 8192
_ALREADY_ENCODED: Final = re.compile(r"[A-Za-z0-9._~-]*", re.ASCII)
# The names a header usually holds: they need no decoding, nor encoding in the base string.
_KNOWN_NAMES: Final = frozenset(
    {
        "oauth_consumer_key",
        "oauth_nonce",
        "oauth_signature",
        "oauth_signature_method",
        "oauth_timestamp",
        "oauth_token",
        "oauth_version",
        "oauth_callback",
        "oauth_verifier",
        "realm",
    }
)


_USUAL_NAMES: Final = _KNOWN_NAMES - {"realm"}


def encode(text: str) -> str:
    """RFC 5849 3.6 percent-encoding of UTF-8 text."""
    if _ALREADY_ENCODED.fullmatch(text) is not None:
        return text  # nonces, timestamps, most keys: nothing to encode, nothing to cache
    return _quoted(text)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _quoted(text: str) -> str:
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
    params = _usual_header(rest)
    if params is not None:
        return params
    params = _plain_header(rest)
    if params is None:
        params = _scanned_header(rest)
    if params is not None:
        params.pop("realm", None)  # not a protocol parameter
    return params


def _usual_header(rest: str) -> dict[str, str] | None:
    """The header as signers write it, `k="v", k="v"` (known names but `realm`, each once,
    values without quotes or commas), in one split; None for anything else, which
    `_plain_header` decides."""
    if rest[-1:] != '"':
        return None
    params: dict[str, str] = {}
    items = rest[:-1].split('", ')
    for item in items:
        name, quote, raw = item.partition('="')
        if not quote or name not in _USUAL_NAMES or '"' in raw or "," in raw:
            return None
        params[name] = _decoded_value(raw) if "%" in raw else raw
    return params if len(params) == len(items) else None


def _plain_header(rest: str) -> dict[str, str] | None:
    """The usual header (known names, quoted values without commas) by splitting it; None
    for anything else, which `_scanned_header` decides."""
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, quoted = part.partition("=")
        name = name.strip()
        quoted = quoted.strip()
        if (
            not equals
            or name not in _KNOWN_NAMES
            or name in params
            or len(quoted) < 2
            or quoted[0] != '"'
            or quoted[-1] != '"'
            or '"' in quoted[1:-1]
        ):
            return None
        raw = quoted[1:-1]
        params[name] = _decoded_value(raw) if "%" in raw else raw
    return params


def _decoded_value(raw: str) -> str:
    """`unquote(raw)`, for a header value. The usual escapes are those of base64's `+/=`
    (a signature): three replacements decode them; when any other `%` is left, `unquote`
    decodes the whole (each `%` is either one of those three escapes, or unquote's)."""
    decoded = raw.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
    return decoded if "%" not in decoded else unquote(raw)


def _scanned_header(rest: str) -> dict[str, str] | None:
    params: dict[str, str] = {}
    pos, end = 0, len(rest)
    if rest.isspace():
        pos = end
    item = _ITEM.match
    while pos < end:  # one pass: each pair must start where the one before ended
        found = item(rest, pos)
        if found is None:
            return None
        name, raw = found.groups()
        name = _decode(name)
        if name in params:
            return None
        params[name] = _decode(raw)
        pos = found.end()
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


@functools.lru_cache(maxsize=_CACHE_SIZE)
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
    pairs = [(k if k in _KNOWN_NAMES else encode(k), encode(v)) for k, v in protocol]
    pairs.extend(encoded)
    pairs.sort()
    normalized = "&".join([f"{k}={v}" for k, v in pairs])
    escaped = normalized.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
    return f"{method.upper()}&{encode(uri)}&{escaped}"


def is_encoded(text: str) -> bool:
    """Whether `text` is its own encoding (only ALPHA, DIGIT and `-._~`)."""
    return _ALREADY_ENCODED.fullmatch(text) is not None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def encoded_base_uri(scheme: str, host: str, path: str) -> str:
    """`encode(base_uri(scheme, host, path))`, as the base string holds it."""
    return encode(base_uri(scheme, host, path))


def base_string_of_pairs(method: str, encoded_uri: str, pairs: list[str]) -> str:
    """RFC 5849 3.4.1.1 from the parameters as encoded `name=value` strings (sorted here, in
    place) and the encoded base string URI, for parameters of which no name is a prefix
    of another: then sorting the strings sorts them by name, then value, as 3.4.1.3.2 does
    (two names differ before either one's `=`)."""
    pairs.sort()
    normalized = "&".join(pairs)
    escaped = normalized.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
    return f"{method.upper()}&{encoded_uri}&{escaped}"


def signing_key(consumer_secret: str, token_secret: str) -> bytes:
    return f"{encode(consumer_secret)}&{encode(token_secret)}".encode()


_BLOCK: Final = 64  # SHA-1's block size, in bytes
_INNER_PAD: Final = bytes(byte ^ 0x36 for byte in range(256))  # translation tables
_OUTER_PAD: Final = bytes(byte ^ 0x5C for byte in range(256))
_KEYS_KEPT: Final = 64


class HmacSha1Key:
    """One HMAC-SHA1 key (RFC 2104), its padded inner and outer hash states computed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > _BLOCK:
            key = hashlib.sha1(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha1(key.translate(_INNER_PAD))
        self._outer = hashlib.sha1(key.translate(_OUTER_PAD))

    def signature(self, text: str) -> str:
        """The base64 HMAC-SHA1 of `text` (UTF-8)."""
        inner = self._inner.copy()
        inner.update(text.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return binascii.b2a_base64(outer.digest(), newline=False).decode()


@functools.lru_cache(maxsize=_KEYS_KEPT)
def hmac_key(key: bytes) -> HmacSha1Key:
    return HmacSha1Key(key)


def hmac_sha1(key: bytes, text: str) -> str:
    return hmac_key(key).signature(text)


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
