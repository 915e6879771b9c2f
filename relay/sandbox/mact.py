"""X's mobile app conversion endpoints (MACT), query parameters and OAuth 1.0a only:

    POST /12/conversion_event        records one app conversion, answers X's attribution
    GET  /12/conversion_attribution  the attribution X would claim; records nothing

Order of checks, as a client sees them: authentication (401), the app id's syntax (404
INVALID_APP_ID: neither an App Store number nor an Android package name), the app (404
MACT_APP_NOT_FOUND), the token's right to the app's account (403 ACCOUNT_NOT_FOUND, 403
ACCOUNT_LOCKED_OUT), a denial of the app or its account (access.py), the parameters (400);
then, conversion_event only, the account's app event provider configuration (404
APP_EVENT_PROVIDER_CONFIGURATION_NOT_FOUND), the app's event tag for the conversion type
(404 APP_EVENT_TAG_NOT_FOUND) and the account's budget
(429: an attribution query records no event and costs none).

Windows: conversion_event takes the ones given, else the tag's (post_engagement ->
click_window, post_view -> view_through_window), as the seeds say the tags define them;
conversion_attribution takes the ones given, else X's documented defaults (14 and 1).
`request.params` echoes what was received plus what X adds: `version_number`, the windows
and `limit_ad_tracking` that applied.

`twitter_attribution` is always present (null when X claims nothing); `tpn_attribution` is
filled instead when the winning engagement was on the X Audience Platform (TAP).
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from relay.sandbox.access import Access
from relay.sandbox.attribution import Engagement
from relay.sandbox.auth import check_account, signed_request, verify_oauth
from relay.sandbox.config import SandboxApp, SandboxConfig, SandboxCredentials
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.mact_params import (
    ATTRIBUTION_PARAMS,
    DEFAULT_CLICK_WINDOW,
    DEFAULT_VIEW_THROUGH_WINDOW,
    EVENT_PARAMS,
    INVALID,
    AppConversion,
    check_windows,
    parse_app_conversion,
    received_params,
)
from relay.sandbox.resources import RESOURCES_KEY
from relay.sandbox.responses import ErrorDetail, XApiError, json_response
from relay.sandbox.seeds import PROVIDER_CONFIGURATIONS
from relay.sandbox.state import SandboxState

EVENT_PATH: Final = "/12/conversion_event"
ATTRIBUTION_PATH: Final = "/12/conversion_attribution"
DATA_TYPE: Final = "conversion_attribution"
VERSION_NUMBER: Final = "1"  # what X echoes in conversion_event's request.params
# App Store ids are numbers; Google Play ids are Java package names.
STORE_ID: Final = re.compile(r"\d{1,20}|[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+", re.ASCII)


async def post_conversion_event(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG_KEY], request.app[STATE_KEY]
    creds = verify_oauth(await signed_request(request), config)
    conversion, app = _checked(request.query, config, creds, EVENT_PARAMS, state.access)
    click, view = _tag_windows(request, app, conversion)
    return json_response(recorded_event(state, app, conversion, creds, click, view))


def recorded_event(
    state: SandboxState,
    app: SandboxApp,
    conversion: AppConversion,
    creds: SandboxCredentials,
    click: int,
    view: int,
) -> dict[str, Any]:
    """conversion_event's answer once every check passed, the conversion journalled (429
    when its account's budget is spent: then nothing is recorded). mact_fast.py's answers
    come from here too."""
    attribution = _attribution(state, conversion, click, view)
    received, metadata = conversion.params, conversion.metadata
    params = {
        "version_number": VERSION_NUMBER,
        **received,
        "click_window": str(click),
        "view_through_window": str(view),
        "limit_ad_tracking": "true" if conversion.limit_ad_tracking else "false",
    }
    state.accept_app(app, dict(received), attribution)
    data: dict[str, Any] = {  # _echo's fields, inline: one dict less per request
        "app_id": conversion.app_id,
        "os_type": conversion.os_type,
        "hashed_device_id": conversion.hashed_device_id,
        "conversion_type": conversion.conversion_type,
        "conversion_time": conversion.conversion_time,
        "click_window": click,
        "view_through_window": view,
        "non_twitter_engagement_time": conversion.non_twitter_engagement_time,
        "non_twitter_engagement_type": conversion.non_twitter_engagement_type,
        **metadata,
        "partner_client_id": creds.consumer_key,
        "conversion_value_micro": metadata.get("price_micro", 0),
        "limit_ad_tracking": conversion.limit_ad_tracking,
        "event_metadata": dict(metadata) or None,
        **attribution,
    }
    return {"data": data, "request": {"params": params}}


async def get_conversion_attribution(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG_KEY], request.app[STATE_KEY]
    creds = verify_oauth(await signed_request(request), config)
    conversion, _ = _checked(request.query, config, creds, ATTRIBUTION_PARAMS, state.access)
    click = _given(conversion.click_window, DEFAULT_CLICK_WINDOW)
    view = _given(conversion.view_through_window, DEFAULT_VIEW_THROUGH_WINDOW)
    _check_windows(click, view, conversion)
    data: dict[str, Any] = {
        **_echo(conversion, click, view),
        "partner_client_id": creds.consumer_key,
        "extra_device_ids": list(conversion.extra_device_ids) or None,
        "data_type": DATA_TYPE,
        **_attribution(state, conversion, click, view),
    }
    # X's example puts data_type beside data; the relay's client reads data: both carry it.
    return json_response(
        {"request": {"params": conversion.params}, "data_type": DATA_TYPE, "data": data}
    )


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def _check_windows(click: int, view: int, conversion: AppConversion) -> None:
    errors: list[ErrorDetail] = []
    check_windows(click, view, errors)
    if errors:
        raise XApiError(400, errors, conversion.params)


def _tag_windows(
    request: web.Request, app: SandboxApp, conversion: AppConversion
) -> tuple[int, int]:
    """The windows of conversion_event: given, else the app event tag's. 404 when the
    account has no provider configuration or the app no tag for the conversion type."""
    store = request.app[RESOURCES_KEY]
    if not store.any_live(PROVIDER_CONFIGURATIONS, app.account_id):
        raise XApiError.single(
            404,
            "APP_EVENT_PROVIDER_CONFIGURATION_NOT_FOUND",
            f"Account {app.account_id} has no app event provider configuration",
            params=conversion.params,
        )
    tag = store.app_event_tag(
        app.account_id, app.id, conversion.os_type, conversion.conversion_type
    )
    if tag is None:
        raise XApiError.single(
            404,
            "APP_EVENT_TAG_NOT_FOUND",
            f"App {app.id} has no app event tag for {conversion.conversion_type}",
            "conversion_type",
            conversion.params,
        )
    click = _given(conversion.click_window, tag["post_engagement_attribution_window"])
    view = _given(conversion.view_through_window, tag["post_view_attribution_window"])
    _check_windows(click, view, conversion)
    return click, view


def _checked(
    query: MultiMapping[str],
    config: SandboxConfig,
    creds: SandboxCredentials,
    allowed: frozenset[str],
    access: Access,
) -> tuple[AppConversion, SandboxApp]:
    """The request's conversion and app once the app, the account and the parameters passed."""
    app_id = query.get("app_id")
    if app_id:
        if STORE_ID.fullmatch(app_id) is None:
            raise XApiError.single(
                404,
                "INVALID_APP_ID",
                "app_id must be an App Store id (digits) or an Android package name",
                "app_id",
                received_params(query),
            )
        app = config.apps.get(app_id)
        if app is None:
            raise XApiError.single(
                404,
                "MACT_APP_NOT_FOUND",
                f"App {app_id} was not found",
                "app_id",
                received_params(query),
            )
        check_account(creds, app.account_id, config)
        access.refuse(account_id=app.account_id, app_id=app.id, params=received_params(query))
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
    return conversion, app


def _attribution(
    state: SandboxState, conversion: AppConversion, click: int, view: int
) -> dict[str, Any]:
    """`twitter_attribution` and `tpn_attribution`: at most one of them filled."""
    winner: Engagement | None = state.engagements.attribute(
        conversion.app_id, conversion.device_ids, conversion.conversion_ms, click, view
    )
    node = winner.attribution() if winner is not None else None
    tap = winner is not None and winner.tap
    return {
        "twitter_attribution": None if tap else node,
        "tpn_attribution": node if tap else None,
    }


def _echo(conversion: AppConversion, click: int, view: int) -> dict[str, Any]:
    """The request's fields as X echoes them in `data`, defaults applied."""
    return {
        "app_id": conversion.app_id,
        "os_type": conversion.os_type,
        "hashed_device_id": conversion.hashed_device_id,
        "conversion_type": conversion.conversion_type,
        "conversion_time": conversion.conversion_time,
        "click_window": click,
        "view_through_window": view,
        "non_twitter_engagement_time": conversion.non_twitter_engagement_time,
        "non_twitter_engagement_type": conversion.non_twitter_engagement_type,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post(EVENT_PATH, post_conversion_event)
    app.router.add_get(ATTRIBUTION_PATH, get_conversion_attribution)
