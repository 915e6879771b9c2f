"""Who may call: OAuth 1.0a (HMAC-SHA1) verified the way X does, or a pixel's X-Pixel-Token.

The signature base string is rebuilt from what arrived: the method, the URL as the client
addressed it (scheme, Host header, raw path), the `oauth_*` parameters of the header, the
query parameters and urlencoded form parameters. JSON bodies are not signed (RFC 5849
3.4.1.3.1). A valid signature must also be fresh (`oauth_timestamp` within 300 s of the
sandbox's clock) and new (no replayed nonce): see replay.py. Every failure answers X's one
401 body, whatever went wrong, as X does.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from aiohttp import hdrs, web

from relay.sandbox.config import SandboxConfig, SandboxCredentials, SandboxPixel
from relay.sandbox.keys import STATE_KEY
from relay.sandbox.replay import ReplayGuard
from relay.sandbox.responses import XApiError
from relay.xads.oauth import (
    OAUTH_VERSION,
    SIGNATURE_METHOD,
    parse_authorization_header,
    sign,
    signature_base_string,
)

PIXEL_TOKEN_HEADER: Final = "X-Pixel-Token"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
_REQUIRED: Final = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_nonce",
    "oauth_timestamp",
    "oauth_signature_method",
)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a signature covers. `url` holds the query as sent. `replay` (the app's) refuses
    stale and replayed signatures; without it only the signature is checked."""

    method: str
    url: str
    authorization: str | None
    form: Sequence[tuple[str, str]] = ()
    replay: ReplayGuard | None = None


def unauthorized() -> XApiError:
    return XApiError.single(
        401, "UNAUTHORIZED_ACCESS", "This request is not properly authenticated"
    )


async def signed_request(request: web.Request) -> SignedRequest:
    form: list[tuple[str, str]] = []
    if request.content_type == FORM_CONTENT_TYPE:
        form = parse_qsl(await request.text(), keep_blank_values=True)
    state = request.app.get(STATE_KEY)
    return SignedRequest(
        method=request.method,
        url=f"{request.scheme}://{request.host}{request.raw_path}",
        authorization=request.headers.get(hdrs.AUTHORIZATION),
        form=form,
        replay=state.replay if state is not None else None,
    )


def verify_oauth(request: SignedRequest, config: SandboxConfig) -> SandboxCredentials:
    """The credentials that signed `request`; XApiError(401) when none did."""
    if not request.authorization:
        raise unauthorized()
    try:
        header = parse_authorization_header(request.authorization)
    except ValueError:
        raise unauthorized() from None
    signature = header.get("oauth_signature", "")
    if (
        not signature
        or not all(header.get(name) for name in _REQUIRED)
        or header["oauth_signature_method"] != SIGNATURE_METHOD
        or header.get("oauth_version", OAUTH_VERSION) != OAUTH_VERSION
    ):
        raise unauthorized()
    creds = config.credentials_for(header["oauth_consumer_key"], header["oauth_token"])
    if creds is None:
        raise unauthorized()
    oauth = [(k, v) for k, v in header.items() if k.startswith("oauth_") and k != "oauth_signature"]
    query = parse_qsl(urlsplit(request.url).query, keep_blank_values=True)
    base_string = signature_base_string(
        request.method, request.url, [*oauth, *query, *request.form]
    )
    expected = sign(base_string, creds.consumer_secret.reveal(), creds.access_token_secret.reveal())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise unauthorized()
    # Only a valid signature may take a nonce: forged requests cannot fill the memory.
    if request.replay is not None and not request.replay.admit(
        creds.consumer_key, creds.access_token, header["oauth_nonce"], header["oauth_timestamp"]
    ):
        raise unauthorized()
    return creds


def verify_pixel_token(token: str, pixel: SandboxPixel) -> None:
    """The web endpoint's alternative to OAuth: the pixel's Conversion API token."""
    expected = pixel.pixel_token.reveal()
    if not expected or not hmac.compare_digest(expected.encode(), token.encode()):
        raise unauthorized()


def check_account(creds: SandboxCredentials, account_id: str) -> None:
    """403 when the token's user may not use the account.

    X lists 403 UNAUTHORIZED_CLIENT_APPLICATION for an app without Ads API access, and 403
    ACCOUNT_NOT_FOUND for an account out of the user's reach: this is the second case. Like
    X, the message does not say whether the account exists.
    """
    if account_id not in creds.accounts:
        raise XApiError.single(
            403,
            "ACCOUNT_NOT_FOUND",
            f"Account {account_id} was not found",
            params={"account_id": account_id},
        )
