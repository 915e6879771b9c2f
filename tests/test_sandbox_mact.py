"""X's MACT endpoints in the sandbox: conversion_event, conversion_attribution, attribution."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from oauthlib.oauth1 import Client

from relay.sandbox.attribution import Engagement, Engagements
from relay.xads.models import ConversionEventParams
from tests.mact_fixtures import (
    ANDROID_APP,
    APP_ACCOUNT,
    ATTRIBUTION,
    EVENT,
    EXAMPLE_ATTRIBUTION,
    EXAMPLE_PARAMS,
    FORBIDDEN_APP,
    IOS_APP,
    add_engagements,
    app_journal,
    app_params,
    call,
    engagement,
    relay_client,
)
from tests.sandbox_fixtures import CREDENTIALS, SandboxClient, running_sandbox

X_401 = {
    "errors": [
        {"code": "UNAUTHORIZED_ACCESS", "message": "This request is not properly authenticated"}
    ],
    "request": {"params": {}},
}
CONVERSION_TIME = "2026-11-20T10:00:00.123Z"
DAY_MS = 86_400_000


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    async with running_sandbox() as client:
        yield client


async def attribution_of(sandbox: SandboxClient, path: str = EVENT, **changes: str | None) -> Any:
    """(twitter_attribution, tpn_attribution) X answers for a conversion of device-1."""
    params = app_params(hashed_device_id="device-1", conversion_time=CONVERSION_TIME)
    params.update({k: v for k, v in changes.items() if v is not None})
    reply = await call(sandbox, path, params)
    assert reply.status == 200, reply.text
    data = reply.body["data"]
    return data["twitter_attribution"], data["tpn_attribution"]


# -- conversion_event: X's documented example and shape ---------------------------------------


async def test_documented_example_request(sandbox: SandboxClient) -> None:
    reply = await call(sandbox, EVENT, EXAMPLE_PARAMS)
    assert reply.status == 200, reply.text
    assert reply.headers["x-current-api-version"] == "12"
    assert reply.body == {
        "data": {
            "app_id": IOS_APP,
            "os_type": "IOS",
            "hashed_device_id": "ABCD1234XYZ",
            "conversion_type": "INSTALL",
            "conversion_time": "2013-04-16T07:00:00.123Z",
            "click_window": 14,
            "view_through_window": 1,
            "non_twitter_engagement_time": None,
            "non_twitter_engagement_type": None,
            "partner_client_id": CREDENTIALS["consumer_key"],
            "conversion_value_micro": 0,
            "limit_ad_tracking": False,
            "event_metadata": None,
            "twitter_attribution": EXAMPLE_ATTRIBUTION,
            "tpn_attribution": None,
        },
        # X echoes its version_number and the defaults that applied (seed 000's example).
        "request": {
            "params": {"version_number": "1", **EXAMPLE_PARAMS, "limit_ad_tracking": "false"}
        },
    }
    journal = await app_journal(sandbox)
    assert journal["total"] == 1
    [entry] = journal["conversions"]
    assert entry["app_id"] == IOS_APP
    assert entry["account_id"] == APP_ACCOUNT
    assert entry["params"] == EXAMPLE_PARAMS
    assert entry["twitter_attribution"] == EXAMPLE_ATTRIBUTION
    assert (await sandbox.journal())["total"] == 0, "the web journal holds web conversions only"
    stats = await sandbox.stats()
    assert stats["app_conversions_accepted"] == 1
    assert stats["app_conversions_attributed"] == 1
    assert stats["conversions_accepted"] == 0
    assert stats["requests"] == {"POST /12/conversion_event": {"200": 1}}


async def test_the_relay_client_records_a_conversion(sandbox: SandboxClient) -> None:
    params: ConversionEventParams = {
        "app_id": IOS_APP,
        "os_type": "IOS",
        "hashed_device_id": "ABCD1234XYZ",
        "conversion_type": "INSTALL",
        "conversion_time": "2013-04-16T07:00:00.123Z",
        "price_micro": 1_990_000,
        "price_currency": "EUR",
        "limit_ad_tracking": False,
    }
    async with relay_client(sandbox) as client:
        data = await client.conversion_event(params)
    assert data["twitter_attribution"] == EXAMPLE_ATTRIBUTION
    assert data["conversion_value_micro"] == 1_990_000
    assert data["event_metadata"] == {"price_micro": 1_990_000, "price_currency": "EUR"}
    assert data["click_window"] == 14, "the default"
    assert (await app_journal(sandbox))["total"] == 1


async def test_every_optional_parameter_is_echoed_typed(sandbox: SandboxClient) -> None:
    optional = {
        "device_ip_address": "2001:db8::1",
        "level": "2",
        "number_items": "3",
        "price_currency": "JPY",
        "price_micro": "123450000",
        "user_payment_info": "true",
        "limit_ad_tracking": "true",
        "non_twitter_engagement_time": "2013-04-16T06:00:00.000Z",
        "non_twitter_engagement_type": "VIEW",
        "click_window": "30",
        "view_through_window": "30",
    }
    reply = await call(sandbox, EVENT, {**EXAMPLE_PARAMS, **optional})
    assert reply.status == 200, reply.text
    data = reply.body["data"]
    metadata = {
        "device_ip_address": "2001:db8::1",
        "level": 2,
        "number_items": 3,
        "price_currency": "JPY",
        "price_micro": 123450000,
        "user_payment_info": True,
    }
    assert data["event_metadata"] == metadata
    assert {k: data[k] for k in metadata} == metadata
    assert data["limit_ad_tracking"] is True
    assert data["conversion_value_micro"] == 123450000
    assert data["non_twitter_engagement_type"] == "VIEW"
    assert (data["click_window"], data["view_through_window"]) == (30, 30)
    assert reply.body["request"]["params"] == {"version_number": "1", **EXAMPLE_PARAMS, **optional}


# -- conversion_event: each rule broken once --------------------------------------------------

RAW_IDFA = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("changes", "code", "parameter"),
    [
        ({"app_id": None}, "MISSING_PARAMETER", "app_id"),
        ({"app_id": ""}, "MISSING_PARAMETER", "app_id"),
        ({"conversion_time": None}, "MISSING_PARAMETER", "conversion_time"),
        ({"conversion_type": None}, "MISSING_PARAMETER", "conversion_type"),
        ({"hashed_device_id": None}, "MISSING_PARAMETER", "hashed_device_id"),
        ({"os_type": None}, "MISSING_PARAMETER", "os_type"),
        ({"conversion_time": "2013-04-16T07:00:00Z"}, "INVALID_PARAMETER", "conversion_time"),
        ({"conversion_time": "2013-04-16T07:00:00.123"}, "INVALID_PARAMETER", "conversion_time"),
        ({"conversion_time": "2013-02-30T07:00:00.123Z"}, "INVALID_PARAMETER", "conversion_time"),
        ({"conversion_type": "BUY"}, "INVALID_PARAMETER", "conversion_type"),
        ({"conversion_type": "install"}, "INVALID_PARAMETER", "conversion_type"),
        ({"os_type": "WINDOWS"}, "INVALID_PARAMETER", "os_type"),
        ({"os_type": "ANDROID"}, "INVALID_PARAMETER", "os_type"),  # the app is an iOS app
        ({"hashed_device_id": RAW_IDFA}, "INVALID_PARAMETER", "hashed_device_id"),
        ({"hashed_device_id": "has space"}, "INVALID_PARAMETER", "hashed_device_id"),
        ({"click_window": "2"}, "INVALID_PARAMETER", "click_window"),
        ({"click_window": ""}, "INVALID_PARAMETER", "click_window"),
        ({"view_through_window": "3"}, "INVALID_PARAMETER", "view_through_window"),
        ({"click_window": "1", "view_through_window": "7"}, "INVALID_PARAMETER", "click_window"),
        ({"device_ip_address": "300.1.1.1"}, "INVALID_PARAMETER", "device_ip_address"),
        ({"device_ip_address": "[::1]"}, "INVALID_PARAMETER", "device_ip_address"),
        ({"level": "-1"}, "INVALID_PARAMETER", "level"),
        ({"level": "two"}, "INVALID_PARAMETER", "level"),
        ({"number_items": "0"}, "INVALID_PARAMETER", "number_items"),
        ({"price_micro": "1.5"}, "INVALID_PARAMETER", "price_micro"),
        ({"price_currency": "usd"}, "INVALID_PARAMETER", "price_currency"),
        ({"price_currency": "EURO"}, "INVALID_PARAMETER", "price_currency"),
        ({"user_payment_info": "yes"}, "INVALID_PARAMETER", "user_payment_info"),
        ({"limit_ad_tracking": "1"}, "INVALID_PARAMETER", "limit_ad_tracking"),
        (
            {"non_twitter_engagement_time": "yesterday"},
            "INVALID_PARAMETER",
            "non_twitter_engagement_time",
        ),
        (
            {"non_twitter_engagement_type": "SWIPE"},
            "INVALID_PARAMETER",
            "non_twitter_engagement_type",
        ),
        ({"extra_device_ids": "a,b"}, "INVALID_PARAMETER", "extra_device_ids"),  # attribution's
        ({"debug": "true"}, "INVALID_PARAMETER", "debug"),
    ],
)
async def test_each_rule_broken_once_is_400(
    sandbox: SandboxClient, changes: dict[str, str | None], code: str, parameter: str
) -> None:
    reply = await call(sandbox, EVENT, app_params(**changes))
    assert reply.status == 400, reply.text
    assert reply.codes == [(code, parameter)]
    assert RAW_IDFA not in reply.body["errors"][0]["message"]
    assert (await app_journal(sandbox))["total"] == 0
    assert (await sandbox.stats())["rejected"] == {code: 1}


async def test_a_parameter_given_twice_is_400(sandbox: SandboxClient) -> None:
    query = [*EXAMPLE_PARAMS.items(), ("conversion_type", "PURCHASE")]
    reply = await call(sandbox, EVENT, query)
    assert reply.status == 400
    assert reply.codes == [("INVALID_PARAMETER", "conversion_type")]


async def test_every_problem_is_reported(sandbox: SandboxClient) -> None:
    params = app_params(conversion_type=None, os_type="PALM", level="x", foo="1")
    reply = await call(sandbox, EVENT, params)
    assert reply.status == 400
    assert sorted(reply.codes) == [
        ("INVALID_PARAMETER", "foo"),
        ("INVALID_PARAMETER", "level"),
        ("INVALID_PARAMETER", "os_type"),
        ("MISSING_PARAMETER", "conversion_type"),
    ]
    assert reply.body["request"]["params"] == params


async def test_an_unknown_app_is_404(sandbox: SandboxClient) -> None:
    reply = await call(sandbox, EVENT, app_params(app_id="999999999", conversion_type="BUY"))
    assert reply.status == 404, "the app is checked before the other parameters"
    assert reply.codes == [("MACT_APP_NOT_FOUND", "app_id")]
    assert (await app_journal(sandbox))["total"] == 0


async def test_an_app_of_an_account_the_token_may_not_use_is_403(sandbox: SandboxClient) -> None:
    reply = await call(sandbox, EVENT, app_params(app_id=FORBIDDEN_APP, os_type="ANDROID"))
    assert reply.status == 403
    assert reply.body == {
        "errors": [{"code": "ACCOUNT_NOT_FOUND", "message": "Account 18ce5600zzz was not found"}],
        "request": {"params": {"account_id": "18ce5600zzz"}},
    }
    assert (await app_journal(sandbox))["total"] == 0


async def test_no_x_pixel_token_on_mact(sandbox: SandboxClient) -> None:
    reply = await call(
        sandbox, EVENT, EXAMPLE_PARAMS, headers={"X-Pixel-Token": "demo-pixel-token-r5e6f"}
    )
    assert (reply.status, reply.body) == (401, X_401)


# -- attribution ------------------------------------------------------------------------------


async def test_no_engagement_no_attribution(sandbox: SandboxClient) -> None:
    reply = await call(sandbox, EVENT, app_params(hashed_device_id="nobody"))
    assert reply.status == 200
    data = reply.body["data"]
    assert "twitter_attribution" in data and data["twitter_attribution"] is None
    assert data["tpn_attribution"] is None
    assert (await sandbox.stats())["app_conversions_attributed"] == 0


async def test_click_inside_the_window_only(sandbox: SandboxClient) -> None:
    # 14 days before the conversion to the millisecond.
    await add_engagements(sandbox, engagement(engagement_time="2026-11-06T10:00:00.123Z"))
    twitter, tpn = await attribution_of(sandbox)
    assert twitter["engagement_type"] == "CLICK"
    assert twitter["promoted_properties"]["campaign_name"] == "Spring"
    assert tpn is None
    assert await attribution_of(sandbox, click_window="7") == (None, None)
    one_ms_late = await attribution_of(sandbox, conversion_time="2026-11-20T10:00:00.124Z")
    assert one_ms_late == (None, None)


async def test_an_engagement_after_the_conversion_does_not_count(sandbox: SandboxClient) -> None:
    await add_engagements(sandbox, engagement(engagement_time="2026-11-20T10:00:00.124Z"))
    assert await attribution_of(sandbox) == (None, None)
    twitter, _ = await attribution_of(sandbox, conversion_time="2026-11-20T10:00:00.124Z")
    assert twitter is not None, "at the same millisecond it counts"


async def test_views_need_a_view_through_window(sandbox: SandboxClient) -> None:
    await add_engagements(
        sandbox, engagement(engagement_type="VIEW", engagement_time="2026-11-20T09:00:00.000Z")
    )
    assert await attribution_of(sandbox, view_through_window="0") == (None, None)
    twitter, _ = await attribution_of(sandbox, view_through_window="1")
    assert twitter["engagement_type"] == "VIEW"
    two_days_later = await attribution_of(sandbox, conversion_time="2026-11-22T09:00:00.001Z")
    assert two_days_later == (None, None)


async def test_a_click_beats_a_later_view(sandbox: SandboxClient) -> None:
    await add_engagements(
        sandbox,
        engagement(engagement_time="2026-11-15T10:00:00.000Z", campaign_id="clicked"),
        engagement(
            engagement_type="VIEW", engagement_time="2026-11-20T09:59:00.000Z", campaign_id="seen"
        ),
    )
    twitter, _ = await attribution_of(sandbox)
    assert (twitter["engagement_type"], twitter["promoted_properties"]["campaign_id"]) == (
        "CLICK",
        "clicked",
    )
    # With clicks out of the window, the view wins.
    twitter, _ = await attribution_of(sandbox, click_window="1", view_through_window="1")
    assert twitter["promoted_properties"]["campaign_id"] == "seen"


async def test_the_most_recent_click_wins(sandbox: SandboxClient) -> None:
    await add_engagements(
        sandbox,
        engagement(engagement_time="2026-11-19T10:00:00.000Z", campaign_id="recent"),
        engagement(engagement_time="2026-11-12T10:00:00.000Z", campaign_id="older"),
    )
    twitter, _ = await attribution_of(sandbox)
    assert twitter["promoted_properties"]["campaign_id"] == "recent"


async def test_engagements_count_only_for_their_app(sandbox: SandboxClient) -> None:
    await add_engagements(sandbox, engagement(app_id=ANDROID_APP))
    assert await attribution_of(sandbox) == (None, None)


async def test_a_tap_engagement_fills_tpn_attribution(sandbox: SandboxClient) -> None:
    await add_engagements(
        sandbox, engagement(tap=True, publisher_app_id="com.example.publisher", country_code="FR")
    )
    twitter, tpn = await attribution_of(sandbox)
    assert twitter is None
    assert tpn == {
        "country_code": "FR",
        "engagement_time": "2026-11-10T10:00:00.000Z",
        "engagement_type": "CLICK",
        "attribution_type": "PROMOTED",
        "promoted_properties": {
            "campaign_id": "c1",
            "line_item_id": "l1",
            "account_id": APP_ACCOUNT,
            "line_item_objective": "APP_INSTALLS",
            "campaign_name": "Spring",
            "publisher_app_id": "com.example.publisher",
        },
        "tweet_id": "1",
    }


async def test_metadata_never_changes_the_attribution(sandbox: SandboxClient) -> None:
    await add_engagements(
        sandbox,
        engagement(engagement_time="2026-11-15T10:00:00.000Z"),
        engagement(engagement_type="VIEW", engagement_time="2026-11-20T09:00:00.000Z"),
    )
    plain = await attribution_of(sandbox)
    metadata = {
        "device_ip_address": "192.133.78.1",
        "level": "9",
        "number_items": "4",
        "price_currency": "EUR",
        "price_micro": "5000000",
        "user_payment_info": "true",
        "limit_ad_tracking": "true",
        "non_twitter_engagement_time": "2026-11-20T09:59:00.000Z",
        "non_twitter_engagement_type": "CLICK",
        "conversion_type": "PURCHASE",
    }
    assert await attribution_of(sandbox, **metadata) == plain
    assert await attribution_of(sandbox) == plain, "the same question, the same answer"
    assert await attribution_of(sandbox, ATTRIBUTION) == plain


def test_the_model_is_deterministic_whatever_the_order_of_devices() -> None:
    click = Engagement("a", IOS_APP, "CLICK", "2026-11-19T00:00:00.000Z", "c", "l", APP_ACCOUNT)
    view = Engagement("b", IOS_APP, "VIEW", "2026-11-20T00:00:00.000Z", "c", "l", APP_ACCOUNT)
    model = Engagements([click, view], max_entries=10)
    now_ms = click.time_ms + DAY_MS
    assert model.attribute(IOS_APP, ["a", "b"], now_ms, 14, 1) is click
    assert model.attribute(IOS_APP, ["b", "a"], now_ms, 14, 1) is click
    assert model.attribute(IOS_APP, ["b"], now_ms, 14, 1) is view
    assert model.attribute(IOS_APP, ["b"], now_ms, 14, 0) is None
    with pytest.raises(ValueError, match="at most 10"):
        model.add([click] * 9)
    assert len(model) == 2, "all or nothing"


# -- conversion_attribution -------------------------------------------------------------------


async def test_conversion_attribution_records_nothing(sandbox: SandboxClient) -> None:
    params = dict(EXAMPLE_PARAMS, view_through_window="0")  # X's example request
    reply = await call(sandbox, ATTRIBUTION, params)
    assert reply.status == 200, reply.text
    assert reply.body["request"] == {"params": params}
    assert reply.body["data_type"] == "conversion_attribution"
    data = reply.body["data"]
    assert data["data_type"] == "conversion_attribution"
    assert data["twitter_attribution"] == EXAMPLE_ATTRIBUTION
    assert data["tpn_attribution"] is None
    assert data["extra_device_ids"] is None
    assert (data["click_window"], data["view_through_window"]) == (14, 0)
    assert data["partner_client_id"] == CREDENTIALS["consumer_key"]
    assert (await app_journal(sandbox))["total"] == 0
    assert (await sandbox.journal())["total"] == 0
    stats = await sandbox.stats()
    assert stats["app_conversions_accepted"] == 0
    assert stats["requests"] == {"GET /12/conversion_attribution": {"200": 1}}


async def test_extra_device_ids_are_matched(sandbox: SandboxClient) -> None:
    await add_engagements(sandbox, engagement(hashed_device_id="sha256-of-sha1"))
    assert await attribution_of(sandbox, ATTRIBUTION) == (None, None)
    twitter, _ = await attribution_of(
        sandbox, ATTRIBUTION, extra_device_ids="other, sha256-of-sha1"
    )
    assert twitter["promoted_properties"]["campaign_id"] == "c1"
    reply = await call(
        sandbox,
        ATTRIBUTION,
        app_params(hashed_device_id="device-1", extra_device_ids="other,sha256-of-sha1"),
    )
    assert reply.body["data"]["extra_device_ids"] == ["other", "sha256-of-sha1"]


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"price_micro": "1"}, "price_micro"),  # not a parameter of conversion_attribution
        ({"extra_device_ids": "a,,b"}, "extra_device_ids"),
        ({"extra_device_ids": ",".join(f"d{i}" for i in range(21))}, "extra_device_ids"),
        ({"extra_device_ids": RAW_IDFA}, "extra_device_ids"),
        ({"click_window": "1", "view_through_window": "14"}, "click_window"),
    ],
)
async def test_conversion_attribution_rules(
    sandbox: SandboxClient, changes: dict[str, str], parameter: str
) -> None:
    reply = await call(sandbox, ATTRIBUTION, app_params(**changes))
    assert reply.status == 400, reply.text
    assert [p for _, p in reply.codes] == [parameter]


async def test_the_relay_client_asks_for_attribution(sandbox: SandboxClient) -> None:
    params: ConversionEventParams = {
        "app_id": IOS_APP,
        "os_type": "IOS",
        "hashed_device_id": "nobody",
        "conversion_type": "INSTALL",
        "conversion_time": "2013-04-16T07:00:00.123Z",
        "extra_device_ids": "ABCD1234XYZ",
    }
    async with relay_client(sandbox) as client:
        data = await client.conversion_attribution(params)
    assert data["twitter_attribution"] == EXAMPLE_ATTRIBUTION
    assert data["data_type"] == "conversion_attribution"
    assert (await app_journal(sandbox))["total"] == 0


# -- OAuth with an independent library --------------------------------------------------------


def oauthlib_header(
    method: str,
    url: str,
    *,
    consumer_secret: str = CREDENTIALS["consumer_secret"],
    nonce: str | None = None,
    timestamp: str | None = None,
) -> str:
    client = Client(
        CREDENTIALS["consumer_key"],
        client_secret=consumer_secret,
        resource_owner_key=CREDENTIALS["access_token"],
        resource_owner_secret=CREDENTIALS["access_token_secret"],
        signature_type="AUTH_HEADER",
        nonce=nonce,
        timestamp=timestamp,
    )
    _, headers, _ = client.sign(url, http_method=method)
    value: str = headers["Authorization"]
    return value


@pytest.mark.parametrize(("path", "method"), [(EVENT, "POST"), (ATTRIBUTION, "GET")])
async def test_oauthlib_signs_for_mact(sandbox: SandboxClient, path: str, method: str) -> None:
    url = f"{sandbox.url}{path}?{urlencode(EXAMPLE_PARAMS)}"
    reply = await call(sandbox, path, EXAMPLE_PARAMS, authorization=oauthlib_header(method, url))
    assert reply.status == 200, reply.text
    assert reply.body["data"]["twitter_attribution"] == EXAMPLE_ATTRIBUTION

    wrong = oauthlib_header(method, url, consumer_secret="not-the-secret")
    reply = await call(sandbox, path, EXAMPLE_PARAMS, authorization=wrong)
    assert (reply.status, reply.body) == (401, X_401)

    stale = oauthlib_header(method, url, timestamp=str(int(time.time()) - 301))
    reply = await call(sandbox, path, EXAMPLE_PARAMS, authorization=stale)
    assert (reply.status, reply.body) == (401, X_401)

    once = oauthlib_header(method, url, nonce="n0nce", timestamp=str(int(time.time())))
    assert (await call(sandbox, path, EXAMPLE_PARAMS, authorization=once)).status == 200
    replayed = await call(sandbox, path, EXAMPLE_PARAMS, authorization=once)
    assert (replayed.status, replayed.body) == (401, X_401)
    recorded = 2 if path == EVENT else 0
    assert (await app_journal(sandbox))["total"] == recorded


# -- engagements control ----------------------------------------------------------------------


async def test_engagements_are_listed_and_reset_to_the_configured_ones(
    sandbox: SandboxClient,
) -> None:
    configured = (await sandbox.control("GET", "engagements")).body
    assert configured["total"] == 3
    assert configured["engagements"][0]["hashed_device_id"] == "ABCD1234XYZ"
    await add_engagements(sandbox, engagement())
    listed = (await sandbox.control("GET", "engagements")).body
    assert listed["total"] == 4
    assert listed["engagements"][-1] == {
        **engagement(),
        "line_item_objective": "APP_INSTALLS",
        "country_code": "US",
        "publisher_app_id": None,
        "tap": False,
    }
    assert (await sandbox.control("POST", "reset")).status == 200
    assert (await sandbox.control("GET", "engagements")).body == configured


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "JSON"),
        (orjson.dumps({"hashed_device_id": "x"}), "list"),
        (orjson.dumps([engagement(engagement_type="LIKE")]), "engagement_type"),
        (orjson.dumps([engagement(engagement_time="2026-11-10 10:00")]), "engagement_time"),
        (orjson.dumps([engagement(campaign_id=None)]), "campaign_id"),
        (orjson.dumps([engagement(tap="yes")]), "tap"),
        (orjson.dumps([engagement(tweet_id=1)]), "tweet_id"),
        (orjson.dumps([engagement(colour="red")]), "colour"),
        (orjson.dumps([engagement(app_id="com.unknown")]), "unknown app"),
        (orjson.dumps([engagement(account_id="nope")]), "unknown account"),
    ],
)
async def test_bad_engagements_are_400(sandbox: SandboxClient, body: bytes, message: str) -> None:
    reply = await sandbox.request(
        "POST", f"{sandbox.url}/_sandbox/engagements", data=body, headers={}
    )
    assert reply.status == 400
    assert message in reply.body["errors"][0]["message"]
    assert (await sandbox.control("GET", "engagements")).body["total"] == 3, "none added"


async def test_the_config_lists_the_apps(sandbox: SandboxClient) -> None:
    config = (await sandbox.control("GET", "config")).body
    assert {
        "id": IOS_APP,
        "os_type": "IOS",
        "account_id": APP_ACCOUNT,
        "name": "Demo iOS game",
    } in (config["apps"])
    assert {a["id"] for a in config["apps"]} == {IOS_APP, ANDROID_APP, FORBIDDEN_APP}


async def test_the_app_journal_pages_and_filters(sandbox: SandboxClient) -> None:
    for i in range(3):
        assert (await call(sandbox, EVENT, app_params(level=str(i)))).status == 200
    android = app_params(app_id=ANDROID_APP, os_type="ANDROID")
    assert (await call(sandbox, EVENT, android)).status == 200
    page = await sandbox.journal(kind="app", offset=1, limit=2)
    assert [e["params"].get("level") for e in page["conversions"]] == ["1", "2"]
    assert page["total"] == 4
    mine = await sandbox.journal(kind="app", app_id=ANDROID_APP)
    assert [e["app_id"] for e in mine["conversions"]] == [ANDROID_APP]
    assert (await sandbox.control("GET", "journal", kind="both")).status == 400
    assert (await sandbox.stats())["app_journal"] == {"entries": 4, "dropped": 0}
