"""Who may call: OAuth 1.0a (HMAC-SHA1) verified the way X does, or a pixel's X-Pixel-Token.

The signature base string is rebuilt from what arrived: the method, the URL as the client
addressed it (scheme, Host header, raw path), the `oauth_*` parameters of the header, the
query parameters and urlencoded form parameters. JSON bodies are not signed (RFC 5849
3.4.1.3.1). The verification is the sandbox's own (oauth1.py), never the relay's signer: an
oracle must not share the code it judges. A valid signature must also be fresh
(`oauth_timestamp` within 300 s of the sandbox's clock) and new (no replayed nonce): see
replay.py. Every failure answers X's one 401 body, whatever went wrong, as X does.
"""

from __future__ import annotations

import hmac
from typing import Final, NamedTuple

from aiohttp import hdrs, web

from relay.sandbox import oauth1
from relay.sandbox.config import SandboxConfig, SandboxCredentials, SandboxPixel
from relay.sandbox.keys import STATE_KEY
from relay.sandbox.replay import ReplayGuard
from relay.sandbox.responses import XApiError

PIXEL_TOKEN_HEADER: Final = "X-Pixel-Token"
# The parsed OAuth header; empty when there is none, or none that parses.
HEADER_KEY: Final = web.RequestKey("oauth_header", dict[str, str])
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
_REQUIRED: Final = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_nonce",
    "oauth_timestamp",
    "oauth_signature_method",
)


class SignedRequest(NamedTuple):
    """What a signature covers: the base string URI, the raw query and the raw urlencoded
    body as sent. `replay` (the app's) refuses stale and replayed signatures; without it
    only the signature is checked."""

    method: str
    uri: str
    query: str
    authorization: str | None
    form: str = ""
    replay: ReplayGuard | None = None
    header: dict[str, str] | None = None  # `authorization` parsed, if done (empty: unparsable)
    revoked: frozenset[str] = frozenset()  # access tokens withdrawn at run time (access.py)


def unauthorized() -> XApiError:
    return XApiError.single(
        401, "UNAUTHORIZED_ACCESS", "This request is not properly authenticated"
    )


async def signed_request(request: web.Request) -> SignedRequest:
    form = ""
    if request.content_type == FORM_CONTENT_TYPE:
        form = await request.text()
    state = request.app.get(STATE_KEY)
    path, _, query = request.raw_path.partition("?")
    return SignedRequest(
        method=request.method,
        uri=oauth1.base_uri(request.scheme, request.host, path),
        query=query,
        authorization=request.headers.get(hdrs.AUTHORIZATION),
        form=form,
        replay=state.replay if state is not None else None,
        header=parsed_authorization(request),
        revoked=state.access.revoked_tokens if state is not None else frozenset(),
    )


def parsed_authorization(request: web.Request) -> dict[str, str]:
    """The request's OAuth header parameters (empty: none), parsed once per request: the
    token's budget and the verification both need them."""
    header = request.get(HEADER_KEY)
    if header is None:
        authorization = request.headers.get(hdrs.AUTHORIZATION)
        header = (oauth1.parse_header(authorization) if authorization else None) or {}
        request[HEADER_KEY] = header
    return header


def verify_oauth(request: SignedRequest, config: SandboxConfig) -> SandboxCredentials:
    """The credentials that signed `request`; XApiError(401) when none did."""
    if not request.authorization:
        raise unauthorized()
    header = (
        request.header if request.header is not None else oauth1.parse_header(request.authorization)
    )
    if not header:
        raise unauthorized()
    header = dict(header)
    signature = header.pop("oauth_signature", "")
    if (
        not signature
        or not all(header.get(name) for name in _REQUIRED)
        or header["oauth_signature_method"] != oauth1.HMAC_SHA1
        or header.get("oauth_version", oauth1.VERSION) != oauth1.VERSION
    ):
        raise unauthorized()
    creds = config.credentials_for(header["oauth_consumer_key"], header["oauth_token"])
    if creds is None:
        raise unauthorized()
    encoded = oauth1.encoded_form(request.query)
    if request.form:
        encoded.extend(oauth1.encoded_form(request.form))
    text = oauth1.base_string(request.method, request.uri, header.items(), encoded)
    if not oauth1.signature_matches(oauth1.hmac_sha1(creds.signing_key, text), signature):
        raise unauthorized()
    if creds.access_token in request.revoked:
        raise unauthorized()  # X's one 401, as for any other failure
    # Only a valid signature may take a nonce: forged requests cannot fill the memory.
    if request.replay is not None and not request.replay.admit(
        creds.consumer_key, creds.access_token, header["oauth_nonce"], header["oauth_timestamp"]
    ):
        raise unauthorized()
    if not creds.ads_api_access:
        raise XApiError.single(
            403,
            "UNAUTHORIZED_CLIENT_APPLICATION",
            "The client application making this request does not have access to the Ads API",
        )
    return creds


def token_of(request: web.Request, config: SandboxConfig) -> SandboxCredentials | None:
    """The configured credentials the request's Authorization header names (not verified)."""
    header = parsed_authorization(request)
    if not header:
        return None
    return config.credentials_for(
        header.get("oauth_consumer_key", ""), header.get("oauth_token", "")
    )


def verify_pixel_token(token: str, pixel: SandboxPixel) -> None:
    """The web endpoint's alternative to OAuth: the pixel's Conversion API token."""
    expected = pixel.pixel_token.reveal()
    if not expected or not hmac.compare_digest(expected.encode(), token.encode()):
        raise unauthorized()


def check_account(creds: SandboxCredentials, account_id: str, config: SandboxConfig) -> None:
    """403 when the token's user may not use the account, or the account is locked.

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
    check_unlocked(account_id, config)


def check_unlocked(account_id: str, config: SandboxConfig) -> None:
    """403 ACCOUNT_LOCKED_OUT for an account the config marks `locked` (X locks accounts,
    e.g. for unpaid bills or a policy review: every call on them fails until unlocked)."""
    account = config.accounts.get(account_id)
    if account is not None and account.locked:
        raise XApiError.single(
            403,
            "ACCOUNT_LOCKED_OUT",
            f"Account {account_id} is locked out",
            params={"account_id": account_id},
        )
