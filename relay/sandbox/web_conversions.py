"""`POST /12/measurement/conversions/:pixel_id`: X's web conversions endpoint.

Order of checks, as a client sees them: authentication (401), the pixel (404), the
token's right to the pixel's account (403 ACCOUNT_NOT_FOUND) and the account's standing
(403 ACCOUNT_LOCKED_OUT), a denial of the pixel or its account (access.py), then the body
(400).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from relay.sandbox.auth import (
    PIXEL_TOKEN_HEADER,
    check_account,
    check_unlocked,
    signed_request,
    verify_oauth,
    verify_pixel_token,
)
from relay.sandbox.config import SandboxConfig, SandboxCredentials
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY, WEB_FAST_PATH_KEY
from relay.sandbox.responses import XApiError, json_response
from relay.sandbox.validation import validate_web_request
from relay.sandbox.validation_fast import fast_dedup_keys

PATH: Final = "/12/measurement/conversions/{pixel_id}"


async def post_web_conversions(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG_KEY], request.app[STATE_KEY]
    pixel_id = request.match_info["pixel_id"]
    caller = await _caller(request, config)
    pixel = config.pixels.get(pixel_id)
    if pixel is None:
        raise XApiError.single(
            404, "WEB_EVENT_TAG_NOT_FOUND", f"Pixel {pixel_id} was not found", "pixel_id"
        )
    if isinstance(caller, str):
        verify_pixel_token(caller, pixel)
        check_unlocked(pixel.account_id, config)
    else:
        check_account(caller, pixel.account_id, config)
    state.access.refuse(account_id=pixel.account_id, pixel_id=pixel.id)
    body = await request.read()
    # The common well-formed body in one pass; anything else gets the full checks.
    dedup_keys = fast_dedup_keys(body, pixel) if request.app[WEB_FAST_PATH_KEY] else None
    if dedup_keys is None:
        dedup_keys = validate_web_request(body, pixel).dedup_keys
    else:
        state.web_fast_requests += 1
    debug_id = state.accept(
        pixel, body, dedup_keys, "pixel_token" if isinstance(caller, str) else "oauth"
    )
    return json_response(
        {
            "request": {"params": {"account_id": pixel.account_id}},
            "data": {"conversions_processed": len(dedup_keys), "debug_id": debug_id},
        }
    )


async def _caller(request: web.Request, config: SandboxConfig) -> SandboxCredentials | str:
    """The OAuth credentials (verified), or the pixel token to check once the pixel is known.

    OAuth whenever an Authorization header is sent; X-Pixel-Token only without one.
    """
    pixel_token = request.headers.get(PIXEL_TOKEN_HEADER)
    if pixel_token is not None and hdrs.AUTHORIZATION not in request.headers:
        return pixel_token
    return verify_oauth(await signed_request(request), config)


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, post_web_conversions)
