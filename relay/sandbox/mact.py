"""X's mobile app conversion endpoints (MACT), query parameters and OAuth 1.0a only:

    POST /12/conversion_event        records one app conversion, answers X's attribution
    GET  /12/conversion_attribution  the attribution X would claim; records nothing

Order of checks, as a client sees them: authentication (401), the app (404
MACT_APP_NOT_FOUND), the token's right to the app's account (403 ACCOUNT_NOT_FOUND), the
parameters (400), then the account's budget (429, conversion_event only: an attribution
query records no event and costs none).

`twitter_attribution` is always present (null when X claims nothing); `tpn_attribution` is
filled instead when the winning engagement was on the X Audience Platform (TAP).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from relay.sandbox.attribution import Engagement
from relay.sandbox.auth import check_account, signed_request, verify_oauth
from relay.sandbox.config import SandboxConfig, SandboxCredentials
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.mact_params import (
    ATTRIBUTION_PARAMS,
    EVENT_PARAMS,
    INVALID,
    AppConversion,
    parse_app_conversion,
    received_params,
)
from relay.sandbox.responses import XApiError, json_response
from relay.sandbox.state import SandboxState

EVENT_PATH: Final = "/12/conversion_event"
ATTRIBUTION_PATH: Final = "/12/conversion_attribution"
DATA_TYPE: Final = "conversion_attribution"


async def post_conversion_event(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG_KEY], request.app[STATE_KEY]
    creds = verify_oauth(await signed_request(request), config)
    conversion = _checked(request.query, config, creds, EVENT_PARAMS)
    attribution = _attribution(state, conversion)
    state.accept_app(config.apps[conversion.app_id], dict(conversion.params), attribution)
    data: dict[str, Any] = {
        **_echo(conversion),
        **conversion.metadata,
        "partner_client_id": creds.consumer_key,
        "conversion_value_micro": conversion.metadata.get("price_micro", 0),
        "limit_ad_tracking": conversion.limit_ad_tracking,
        "event_metadata": dict(conversion.metadata) or None,
        **attribution,
    }
    return json_response({"data": data, "request": {"params": conversion.params}})


async def get_conversion_attribution(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG_KEY], request.app[STATE_KEY]
    creds = verify_oauth(await signed_request(request), config)
    conversion = _checked(request.query, config, creds, ATTRIBUTION_PARAMS)
    data: dict[str, Any] = {
        **_echo(conversion),
        "partner_client_id": creds.consumer_key,
        "extra_device_ids": list(conversion.extra_device_ids) or None,
        "data_type": DATA_TYPE,
        **_attribution(state, conversion),
    }
    # X's example puts data_type beside data; the relay's client reads data: both carry it.
    return json_response(
        {"request": {"params": conversion.params}, "data_type": DATA_TYPE, "data": data}
    )


def _checked(
    query: MultiMapping[str],
    config: SandboxConfig,
    creds: SandboxCredentials,
    allowed: frozenset[str],
) -> AppConversion:
    """The request's conversion once the app, the account and the parameters passed."""
    app_id = query.get("app_id")
    if app_id:
        app = config.apps.get(app_id)
        if app is None:
            raise XApiError.single(
                404,
                "MACT_APP_NOT_FOUND",
                f"App {app_id} was not found",
                "app_id",
                received_params(query),
            )
        check_account(creds, app.account_id)
    conversion = parse_app_conversion(query, allowed)  # 400 without an app_id
    app = config.apps[conversion.app_id]
    if conversion.os_type != app.os_type:
        raise XApiError.single(
            400,
            INVALID,
            f"os_type {conversion.os_type} does not match app {app.id} ({app.os_type})",
            "os_type",
            conversion.params,
        )
    return conversion


def _attribution(state: SandboxState, conversion: AppConversion) -> dict[str, Any]:
    """`twitter_attribution` and `tpn_attribution`: at most one of them filled."""
    winner: Engagement | None = state.engagements.attribute(
        conversion.app_id,
        conversion.device_ids,
        conversion.conversion_ms,
        conversion.click_window,
        conversion.view_through_window,
    )
    node = winner.attribution() if winner is not None else None
    tap = winner is not None and winner.tap
    return {
        "twitter_attribution": None if tap else node,
        "tpn_attribution": node if tap else None,
    }


def _echo(conversion: AppConversion) -> dict[str, Any]:
    """The request's fields as X echoes them in `data`, defaults applied."""
    return {
        "app_id": conversion.app_id,
        "os_type": conversion.os_type,
        "hashed_device_id": conversion.hashed_device_id,
        "conversion_type": conversion.conversion_type,
        "conversion_time": conversion.conversion_time,
        "click_window": conversion.click_window,
        "view_through_window": conversion.view_through_window,
        "non_twitter_engagement_time": conversion.non_twitter_engagement_time,
        "non_twitter_engagement_type": conversion.non_twitter_engagement_type,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post(EVENT_PATH, post_conversion_event)
    app.router.add_get(ATTRIBUTION_PATH, get_conversion_attribution)
