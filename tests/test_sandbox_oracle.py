"""The sandbox as an independent oracle: it judges the relay's signer and config reader
instead of sharing them, and answers X's documented codes from their real conditions."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.sandbox import oauth1
from relay.sandbox.config import SandboxAccount, SandboxApp, SandboxPixel
from relay.sandbox.mact_params import CONVERSION_TYPES
from relay.sandbox.seeds import PROVIDER_CONFIGURATIONS
from relay.secret import Secret
from relay.xads import oauth
from relay.xads.errors import Unauthorized
from tests.mact_fixtures import (
    ANDROID_APP,
    APP_ACCOUNT,
    EVENT,
    EXAMPLE_EVENT,
    IOS_APP,
    add_engagements,
    app_params,
    call,
    engagement,
    relay_client,
)
from tests.sandbox_fixtures import (
    Reply,
    SandboxClient,
    conversion,
    default_config,
    oauth_header,
    running_sandbox,
)

TAGS = f"/12/accounts/{APP_ACCOUNT}/app_event_tags"
PROVIDERS = f"/11/accounts/{APP_ACCOUNT}/app_event_provider_configurations"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    async with running_sandbox() as client:
        yield client


async def signed(sandbox: SandboxClient, method: str, path: str) -> Reply:
    url = f"{sandbox.url}{path}"
    header = oauth_header(method, url, timestamp=int(sandbox.clock()))
    return await sandbox.request(method, url, headers={"Authorization": header})


def assert_x_error(reply: Reply, status: int, code: str, parameter: str | None = None) -> None:
    """X's error body: errors [{code, message[, parameter]}] and request.params."""
    assert reply.status == status, reply.text
    body = reply.body
    assert set(body) == {"errors", "request"}
    [error] = body["errors"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert error.get("parameter") == parameter
    assert isinstance(body["request"]["params"], dict)


# -- independence: the sandbox does not share the code it judges ------------------------------


def test_the_sandbox_imports_neither_the_relays_signer_nor_its_config_parser() -> None:
    probe = (
        "import sys, relay.sandbox, relay.sandbox.app, relay.sandbox.server;"
        "print(sorted(m for m in sys.modules if m.startswith(('relay.xads', 'relay.config'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_sandbox_verifier_reproduces_xs_documented_signature() -> None:
    # X's "Creating a signature" example (see the reference), built with RFC 5849 only.
    protocol = {
        "oauth_consumer_key": "xvz1evFS4wEEPTGEFPHBog",
        "oauth_nonce": "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "1318622958",
        "oauth_token": "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        "oauth_version": "1.0",
    }
    encoded = oauth1.encoded_form("include_entities=true")
    encoded += oauth1.encoded_form(
        "status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21"
    )
    uri = oauth1.base_uri("https", "api.twitter.com", "/1.1/statuses/update.json")
    text = oauth1.base_string("POST", uri, protocol.items(), encoded)
    key = oauth1.signing_key(
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
    )
    assert oauth1.hmac_sha1(key, text) == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="


async def test_a_broken_relay_signer_is_refused(
    sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relay_client(sandbox) as client:
        answer = await client.conversion_event(EXAMPLE_EVENT)
        assert answer["twitter_attribution"] is not None  # the signer works: accepted

        right = oauth.encoded_base_string

        def wrong(method: str, url: str, params: Any) -> str:
            return right(method, url, list(params)[:-1])  # a parameter left out

        monkeypatch.setattr(oauth, "encoded_base_string", wrong)
        with pytest.raises(Unauthorized):
            await client.conversion_event(EXAMPLE_EVENT)
    assert (await sandbox.stats())["rejected"]["UNAUTHORIZED_ACCESS"] >= 1


def test_the_sandbox_reads_its_config_file_itself(tmp_path: Path) -> None:
    from relay.sandbox.config import load_sandbox_config

    path = tmp_path / "sandbox.yaml"
    path.write_text(
        "credentials: {consumer_key: k, consumer_secret: s, access_token: t,"
        " access_token_secret: u, accounts: [a1]}\n"
        "accounts: [{id: a1, locked: true}]\n"
        "pixels: [{id: px1, account_id: a1, event_ids: [e1], pixel_token: tok}]\n"
        "sandbox: {total_count_limit: 5, max_in_flight: 3}\n"
    )
    secret = tmp_path / "token-secret"
    secret.write_text("from-a-file\n")
    env = {
        "RELAY_CONSUMER_KEY": "k2",
        "RELAY_CONSUMER_SECRET": "s2",
        "RELAY_ACCESS_TOKEN": "t2",
        "RELAY_ACCESS_TOKEN_SECRET_FILE": str(secret),
    }
    config = load_sandbox_config(path, env)
    [creds] = config.credentials
    assert (creds.consumer_key, creds.access_token_secret.reveal()) == ("k2", "from-a-file")
    assert creds.accounts == frozenset({"a1"})
    assert config.accounts["a1"].locked is True
    assert config.pixels["px1"].pixel_token.reveal() == "tok"
    assert (config.total_count_limit, config.max_in_flight) == (5, 3)
    # One RELAY_* credential set makes the environment the source of all four: incomplete.
    with pytest.raises(Exception, match="incomplete"):
        load_sandbox_config(path, {"RELAY_CONSUMER_KEY": "only-this"})


# -- the default config: app event tags for both demo apps, every conversion type ---------


async def test_the_demo_apps_have_a_tag_for_every_conversion_type(sandbox: SandboxClient) -> None:
    reply = await signed(sandbox, "GET", TAGS)
    assert reply.status == 200
    tags = reply.body["data"]
    for app, os_type in ((IOS_APP, "IOS"), (ANDROID_APP, "ANDROID")):
        mine = {t["conversion_type"]: t for t in tags if t["app_store_identifier"] == app}
        assert set(mine) == CONVERSION_TYPES
        assert {t["os_type"] for t in mine.values()} == {os_type}
        windows = {
            k: (t["post_engagement_attribution_window"], t["post_view_attribution_window"])
            for k, t in mine.items()
        }
        assert windows["PURCHASE"] == (7, 1)
        assert windows["INSTALL"] == (14, 1)
        assert windows["SIGN_UP"] == (30, 1)
    ids = [t["id"] for t in tags]
    assert len(set(ids)) == len(ids)


# -- conversion_event follows the app event tags ------------------------------------------


async def test_conversion_event_takes_its_windows_from_the_tags(sandbox: SandboxClient) -> None:
    # A click ten days before the conversion: inside 14 and 30 days, outside 7.
    await add_engagements(sandbox, engagement(engagement_time="2026-11-10T10:00:00.000Z"))
    base = app_params(hashed_device_id="device-1", conversion_time="2026-11-20T10:00:00.123Z")
    base.pop("click_window")
    base.pop("view_through_window")
    seen: dict[str, tuple[int, int, bool]] = {}
    for kind in ("PURCHASE", "INSTALL", "SIGN_UP"):
        reply = await call(sandbox, EVENT, {**base, "conversion_type": kind})
        assert reply.status == 200, reply.text
        data, params = reply.body["data"], reply.body["request"]["params"]
        assert (params["click_window"], params["view_through_window"]) == (
            str(data["click_window"]),
            str(data["view_through_window"]),
        )
        seen[kind] = (
            data["click_window"],
            data["view_through_window"],
            data["twitter_attribution"] is not None,
        )
    assert seen == {
        "PURCHASE": (7, 1, False),
        "INSTALL": (14, 1, True),
        "SIGN_UP": (30, 1, True),
    }
    # A window the request gives wins over the tag's.
    reply = await call(
        sandbox, EVENT, {**base, "conversion_type": "PURCHASE", "click_window": "14"}
    )
    assert reply.body["data"]["click_window"] == 14
    assert reply.body["data"]["twitter_attribution"] is not None


async def test_a_conversion_type_without_a_tag_is_app_event_tag_not_found(
    sandbox: SandboxClient,
) -> None:
    tags = (await signed(sandbox, "GET", TAGS)).body["data"]
    [purchase] = [
        t
        for t in tags
        if t["app_store_identifier"] == IOS_APP and t["conversion_type"] == "PURCHASE"
    ]
    assert (await signed(sandbox, "DELETE", f"{TAGS}/{purchase['id']}")).status == 200
    reply = await call(sandbox, EVENT, app_params(conversion_type="PURCHASE"))
    assert_x_error(reply, 404, "APP_EVENT_TAG_NOT_FOUND", "conversion_type")
    assert reply.body["request"]["params"]["conversion_type"] == "PURCHASE"
    assert (await call(sandbox, EVENT, app_params())).status == 200  # INSTALL still tagged
    assert (await sandbox.journal(kind="app"))["total"] == 1


async def test_an_account_without_provider_configuration_cannot_record(
    sandbox: SandboxClient,
) -> None:
    configs = (await signed(sandbox, "GET", PROVIDERS)).body["data"]
    [config] = configs
    assert (await signed(sandbox, "DELETE", f"{PROVIDERS}/{config['id']}")).status == 200
    reply = await call(sandbox, EVENT, app_params())
    assert_x_error(reply, 404, "APP_EVENT_PROVIDER_CONFIGURATION_NOT_FOUND")
    assert (await sandbox.journal(kind="app"))["total"] == 0
    create = await signed(sandbox, "POST", f"{PROVIDERS}?provider_advertiser_id=adv-2")
    assert create.status == 200
    assert (await call(sandbox, EVENT, app_params())).status == 200


@pytest.mark.parametrize("app_id", ["not an app", "com.", "-123", "co..vine"])
async def test_a_malformed_app_id_is_invalid_app_id(sandbox: SandboxClient, app_id: str) -> None:
    reply = await call(sandbox, EVENT, app_params(app_id=app_id))
    assert_x_error(reply, 404, "INVALID_APP_ID", "app_id")
    well_formed = await call(sandbox, EVENT, app_params(app_id="com.example.unknown"))
    assert_x_error(well_formed, 404, "MACT_APP_NOT_FOUND", "app_id")


# -- a locked account -----------------------------------------------------------------------


def locked_config() -> Any:
    config = default_config()
    accounts = {**config.accounts, "18celocked1": SandboxAccount("18celocked1", "", locked=True)}
    pixel = SandboxPixel("lk1", "18celocked1", frozenset({"lke1"}), Secret("tok-lk1"))
    app = SandboxApp("987654321", "IOS", "18celocked1")
    [creds] = config.credentials
    creds = dataclasses.replace(creds, accounts=creds.accounts | {"18celocked1"})
    return dataclasses.replace(
        config,
        accounts=accounts,
        pixels={**config.pixels, "lk1": pixel},
        apps={**config.apps, app.id: app},
        credentials=(creds,),
    )


async def test_a_locked_account_is_locked_out_everywhere() -> None:
    async with running_sandbox(locked_config()) as sandbox:
        web = await sandbox.post_conversions({"conversions": [conversion(event_id="lke1")]}, "lk1")
        assert_x_error(web, 403, "ACCOUNT_LOCKED_OUT")
        assert web.body["request"]["params"] == {"account_id": "18celocked1"}
        token = await sandbox.post_conversions(
            {"conversions": [conversion(event_id="lke1")]},
            "lk1",
            headers={"X-Pixel-Token": "tok-lk1"},
        )
        assert_x_error(token, 403, "ACCOUNT_LOCKED_OUT")
        app = await call(sandbox, EVENT, app_params(app_id="987654321"))
        assert_x_error(app, 403, "ACCOUNT_LOCKED_OUT")
        tags = await signed(sandbox, "GET", "/12/accounts/18celocked1/app_event_tags")
        assert_x_error(tags, 403, "ACCOUNT_LOCKED_OUT")
        assert (await sandbox.journal())["total"] == 0
        # Other accounts are unaffected.
        assert (await sandbox.post_conversions({"conversions": [conversion()]})).status == 200


async def test_an_app_without_ads_api_access_is_an_unauthorized_client() -> None:
    config = default_config()
    [creds] = config.credentials
    closed = dataclasses.replace(
        config, credentials=(dataclasses.replace(creds, ads_api_access=False),)
    )
    async with running_sandbox(closed) as sandbox:
        for reply in (
            await sandbox.post_conversions({"conversions": [conversion()]}),
            await call(sandbox, EVENT, app_params()),
            await signed(sandbox, "GET", TAGS),
        ):
            assert_x_error(reply, 403, "UNAUTHORIZED_CLIENT_APPLICATION")
        assert (await sandbox.journal())["total"] == 0


def test_ads_api_access_is_read_from_the_config_file(tmp_path: Path) -> None:
    from relay.sandbox.config import load_sandbox_config

    path = tmp_path / "sandbox.toml"
    path.write_text(
        '[credentials]\nconsumer_key = "k"\nconsumer_secret = "s"\naccess_token = "t"\n'
        'access_token_secret = "u"\nads_api_access = false\n'
    )
    [creds] = load_sandbox_config(path, {}).credentials
    assert creds.ads_api_access is False


# -- capacity ---------------------------------------------------------------------------------


async def test_more_requests_than_capacity_are_over_capacity() -> None:
    async with running_sandbox(default_config(max_in_flight=1)) as sandbox:
        faults = orjson.dumps({"hang_rate": 1.0, "hang_max_s": 60})
        await sandbox.request("POST", f"{sandbox.url}/_sandbox/faults", data=faults, headers={})
        held = asyncio.create_task(sandbox.post_conversions({"conversions": [conversion()]}))
        deadline = time.monotonic() + 10
        while (await sandbox.stats())["faults"].get("hang") != 1:
            assert time.monotonic() < deadline, "the first request never arrived"
            await asyncio.sleep(0.01)
        reply = await sandbox.post_conversions({"conversions": [conversion()]})
        assert_x_error(reply, 503, "OVER_CAPACITY")
        assert reply.headers["Retry-After"] == "1"
        assert (await sandbox.stats())["rejected"]["OVER_CAPACITY"] == 1
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held


# -- with_total_count: X's lower limit ----------------------------------------------------


async def test_with_total_count_has_its_own_lower_limit() -> None:
    assert default_config().total_count_limit == 200  # X's: 200 per 15 minutes
    async with running_sandbox(default_config(total_count_limit=2)) as sandbox:
        for left in ("1", "0"):
            ok = await signed(sandbox, "GET", f"{TAGS}?with_total_count=true")
            assert ok.status == 200 and ok.body["total_count"] == 40
            assert (ok.headers["x-rate-limit-limit"], ok.headers["x-rate-limit-remaining"]) == (
                "2",
                left,
            )
        refused = await signed(sandbox, "GET", f"{TAGS}?with_total_count=true")
        assert_x_error(refused, 429, "TOO_MANY_REQUESTS")
        assert refused.headers["x-rate-limit-limit"] == "2"
        assert refused.headers["x-rate-limit-remaining"] == "0"
        assert int(refused.headers["x-rate-limit-reset"]) > time.time()
        plain = await signed(sandbox, "GET", TAGS)  # lists without the count are not limited
        assert plain.status == 200 and int(plain.headers["x-rate-limit-remaining"]) > 2


# -- ISO 4217 and IP syntax -------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["ABC", "XYZ", "usd", "EURO"])
async def test_price_currency_must_be_iso_4217(sandbox: SandboxClient, currency: str) -> None:
    web = await sandbox.post_conversions({"conversions": [conversion(price_currency=currency)]})
    assert web.status == 400 and ("INVALID_PARAMETER", "price_currency") in web.codes
    app = await call(sandbox, EVENT, app_params(price_currency=currency))
    assert app.status == 400 and ("INVALID_PARAMETER", "price_currency") in app.codes


async def test_iso_4217_codes_pass(sandbox: SandboxClient) -> None:
    for currency in ("EUR", "JPY", "CHF"):
        web = await sandbox.post_conversions({"conversions": [conversion(price_currency=currency)]})
        assert web.status == 200, web.text
        app = await call(
            sandbox,
            EVENT,
            app_params(price_currency=currency, hashed_device_id=f"d-{currency}"),
        )
        assert app.status == 200, app.text


@pytest.mark.parametrize("ip", ["1.2.3", "256.1.1.1", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", "::zz"])
async def test_web_ip_address_syntax(sandbox: SandboxClient, ip: str) -> None:
    identifiers = [{"ip_address": ip, "user_agent": "Mozilla/5.0"}, {"twclid": "abc"}]
    reply = await sandbox.post_conversions({"conversions": [conversion(identifiers=identifiers)]})
    assert reply.status == 400 and ("INVALID_PARAMETER", "ip_address") in reply.codes
    assert ip not in reply.text  # an IP address is personal data: never echoed


@pytest.mark.parametrize("ip", ["8.25.197.25", "1.0.0.0", " 10.0.0.1 ", "2001:db8::1"])
async def test_web_ip_addresses_that_pass(sandbox: SandboxClient, ip: str) -> None:
    identifiers = [{"ip_address": ip, "user_agent": "Mozilla/5.0"}]
    reply = await sandbox.post_conversions({"conversions": [conversion(identifiers=identifiers)]})
    assert reply.status == 200, reply.text


# -- /11/ wherever X documented v11 -------------------------------------------------------


async def test_v11_paths_serve_the_same_resources(sandbox: SandboxClient) -> None:
    for kind in ("app_event_tags", PROVIDER_CONFIGURATIONS):
        v11 = await signed(sandbox, "GET", f"/11/accounts/{APP_ACCOUNT}/{kind}")
        v12 = await signed(sandbox, "GET", f"/12/accounts/{APP_ACCOUNT}/{kind}")
        assert v11.status == v12.status == 200
        assert v11.body["data"] == v12.body["data"] and v11.body["data"]
    assert (
        await signed(sandbox, "GET", f"/11/accounts/{APP_ACCOUNT}/app_event_tags/jhp")
    ).status == 200
