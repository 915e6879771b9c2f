"""The management resources over real HTTP, through the relay's own client and `relay api`."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from oauthlib.oauth1 import Client

from relay.cli import build_parser
from relay.config import Secret, default_mapping_path, load_settings
from relay.sandbox.server import SandboxServer
from relay.tools.api import run_api
from relay.xads.client import XAdsClient
from relay.xads.errors import BadRequest, Forbidden, NotFound, Unauthorized

ACCOUNT = "18ce552mlaq"  # no seeded resources: the tests start from empty stores
TAG = dict(
    app_store_identifier="333903271",
    conversion_type="PURCHASE",
    os_type="IOS",
    provider_app_event_id="p1",
    provider_app_event_name="buy",
)


def client(url: str, secret: str = "relay-demo-consumer-secret") -> XAdsClient:
    settings = load_settings({"RELAY_CONFIG": str(default_mapping_path())})
    creds = settings.credentials
    return XAdsClient(
        url,
        type(creds)(
            creds.consumer_key, Secret(secret), creds.access_token, creds.access_token_secret
        ),
    )


async def test_app_event_tags_round_trip_with_paging_and_deletes(sandbox: SandboxServer) -> None:
    async with client(sandbox.url) as x:
        created = [
            await x.app_event_tags.create(ACCOUNT, **{**TAG, "provider_app_event_id": f"p{i}"})
            for i in range(5)
        ]
        assert created[0]["status"] == "TRACKING" and created[0]["deleted"] is False
        assert created[0]["post_engagement_attribution_window"] == 30  # X's default
        assert created[0]["post_view_attribution_window"] == 1
        first = await x.app_event_tags.list(ACCOUNT, count=2)
        assert len(first.data) == 2 and first.next_cursor
        everything = [t async for t in x.app_event_tags.iterate(ACCOUNT, count=2)]
        assert [t["id"] for t in everything] == [t["id"] for t in created]
        one = await x.app_event_tags.get(ACCOUNT, created[1]["id"])
        assert one == created[1]
        deleted = await x.app_event_tags.delete(ACCOUNT, created[1]["id"])
        assert deleted["deleted"] is True
        with pytest.raises(NotFound) as missing:
            await x.app_event_tags.get(ACCOUNT, created[1]["id"])
        assert missing.value.code == "APP_EVENT_TAG_NOT_FOUND"
        assert (await x.app_event_tags.get(ACCOUNT, created[1]["id"], with_deleted=True))["deleted"]
        live = await x.app_event_tags.list(ACCOUNT)
        assert len(live.data) == 4 and live.next_cursor is None
        all_of_them = await x.app_event_tags.list(ACCOUNT, with_deleted=True, with_total_count=True)
        assert all_of_them.total_count == 5
        only = await x.app_event_tags.list(ACCOUNT, ids=[created[0]["id"], created[2]["id"]])
        assert {t["id"] for t in only.data} == {created[0]["id"], created[2]["id"]}
        newest_first = await x.app_event_tags.list(ACCOUNT, sort_by="id-desc")
        assert newest_first.data[0]["id"] == created[-1]["id"]


@pytest.mark.parametrize(
    ("params", "code", "parameter"),
    [
        ({"count": 0}, "INVALID_PARAMETER", "count"),
        ({"count": 1001}, "INVALID_PARAMETER", "count"),
        ({"cursor": "c1", "with_total_count": True}, "EXCLUSIVE_PARAMETERS", "with_total_count"),
        ({"cursor": "not-ours"}, "INVALID_PARAMETER", "cursor"),
        ({"sort_by": "colour-asc"}, "INVALID_PARAMETER", "sort_by"),
        ({"ids": [f"i{n}" for n in range(201)]}, "INVALID_PARAMETER", "app_event_tag_ids"),
    ],
)
async def test_list_rules(
    sandbox: SandboxServer, params: dict[str, Any], code: str, parameter: str
) -> None:
    async with client(sandbox.url) as x:
        with pytest.raises(BadRequest) as error:
            await x.app_event_tags.list(ACCOUNT, **params)
    assert (error.value.code, error.value.parameter) == (code, parameter)


@pytest.mark.parametrize(
    ("change", "code", "parameter"),
    [
        ({"conversion_type": "BUY"}, "INVALID_PARAMETER", "conversion_type"),
        ({"os_type": "WINDOWS"}, "INVALID_PARAMETER", "os_type"),
        ({"provider_app_event_name": None}, "MISSING_PARAMETER", "provider_app_event_name"),
        ({"post_view_attribution_window": 3}, "INVALID_PARAMETER", "post_view_attribution_window"),
        ({"retargeting_enabled": "maybe"}, "INVALID_PARAMETER", "retargeting_enabled"),
        ({"colour": "red"}, "INVALID_PARAMETER", "colour"),
    ],
)
async def test_app_event_tag_create_rules(
    sandbox: SandboxServer, change: dict[str, Any], code: str, parameter: str
) -> None:
    async with client(sandbox.url) as x:
        with pytest.raises(BadRequest) as error:
            await x.app_event_tags.create(ACCOUNT, **{**TAG, **change})
    assert (error.value.code, error.value.parameter) == (code, parameter)


async def test_app_lists_and_their_limits(sandbox: SandboxServer) -> None:
    async with client(sandbox.url) as x:
        made = await x.app_lists.create(
            ACCOUNT, name="games", app_store_identifiers=["333903271", "com.vine.android"]
        )
        assert made["apps"] == [
            {"app_store_identifier": "333903271", "os_type": "iOS"},  # as X shows them
            {"app_store_identifier": "com.vine.android", "os_type": "Android"},
        ]
        listed = await x.app_lists.list(ACCOUNT)
        assert listed.data == [{"id": made["id"], "name": "games"}]
        with pytest.raises(BadRequest, match="500 apps"):
            await x.app_lists.create(
                ACCOUNT, name="big", app_store_identifiers=[f"com.a{i}" for i in range(501)]
            )
        for i in range(99):
            await x.app_lists.create(ACCOUNT, name=f"l{i}", app_store_identifiers=["1"])
        with pytest.raises(BadRequest, match="100 app lists"):
            await x.app_lists.create(ACCOUNT, name="one too many", app_store_identifiers=["1"])


async def test_one_provider_configuration_per_account(sandbox: SandboxServer) -> None:
    async with client(sandbox.url) as x:
        config = await x.provider_configs.create(ACCOUNT, provider_advertiser_id="adv-1")
        assert config["provider_name"] and config["deleted"] is False
        with pytest.raises(BadRequest, match="Only one"):
            await x.provider_configs.create(ACCOUNT, provider_advertiser_id="adv-2")
        await x.provider_configs.delete(ACCOUNT, config["id"])
        again = await x.provider_configs.create(ACCOUNT, provider_advertiser_id="adv-2")
        assert again["id"] != config["id"]


async def test_access_rules(sandbox: SandboxServer) -> None:
    async with client(sandbox.url, secret="wrong") as x:
        with pytest.raises(Unauthorized):
            await x.app_lists.list(ACCOUNT)
    async with client(sandbox.url) as x:
        with pytest.raises(Forbidden) as forbidden:
            await x.app_lists.list("18ce5600zzz")
        assert forbidden.value.code == "ACCOUNT_NOT_FOUND"


async def test_an_independent_oauth_library_can_call_every_management_endpoint(
    sandbox: SandboxServer,
) -> None:
    import aiohttp

    creates = {
        "/12/accounts/{a}/app_event_tags": "app_store_identifier=333903271&conversion_type="
        "PURCHASE&os_type=IOS&provider_app_event_id=p&provider_app_event_name=n",
        "/12/accounts/{a}/app_lists": "name=games&app_store_identifiers=333903271",
        "/11/accounts/{a}/app_event_provider_configurations": "provider_advertiser_id=adv",
    }

    def signed(method: str, url: str, secret: str) -> dict[str, str]:
        signer = Client(
            "relay-demo-consumer-key",
            client_secret=secret,
            resource_owner_key="1000000001-relaydemoaccesstoken",
            resource_owner_secret="relay-demo-access-token-secret",
        )
        _, headers, _ = signer.sign(url, http_method=method)
        return dict(headers)

    async with aiohttp.ClientSession() as session:
        for path, query in creates.items():
            base = sandbox.url + path.format(a=ACCOUNT)
            calls = [("POST", f"{base}?{query}"), ("GET", f"{base}?count=5")]
            for method, url in calls:
                async with session.request(
                    method, url, headers=signed(method, url, "wrong")
                ) as resp:
                    assert resp.status == 401, (method, url)
                async with session.request(
                    method, url, headers=signed(method, url, "relay-demo-consumer-secret")
                ) as resp:
                    assert resp.status == 200, (method, url, await resp.text())
                    body = await resp.json()
            item_id = body["data"][0]["id"]
            for method in ("GET", "DELETE"):
                url = f"{base}/{item_id}"
                async with session.request(
                    method, url, headers=signed(method, url, "relay-demo-consumer-secret")
                ) as resp:
                    assert resp.status == 200, (method, url)


def test_relay_api_round_trip(sandbox_process_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_CONFIG", str(default_mapping_path()))
    monkeypatch.setenv("RELAY_API_BASE_URL", sandbox_process_url)
    settings = load_settings()

    def api(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = run_api(build_parser().parse_args(["api", *argv]), settings, out)
        return code, out.getvalue()

    for i in range(3):
        code, _ = api(
            "app-event-tags",
            "create",
            "--account",
            ACCOUNT,
            "--app-store-identifier",
            "333903271",
            "--conversion-type",
            "PURCHASE",
            "--os-type",
            "IOS",
            "--provider-app-event-id",
            f"p{i}",
            "--provider-app-event-name",
            "buy",
        )
        assert code == 0
    code, page = api("app-event-tags", "list", "--account", ACCOUNT, "--count", "2")
    assert code == 0 and "more: --cursor" in page and page.count("PURCHASE") == 2
    code, everything = api(
        "app-event-tags", "list", "--account", ACCOUNT, "--count", "2", "--all", "--json"
    )
    tags = orjson.loads(everything)["data"]
    assert code == 0 and len(tags) == 3
    code, shown = api("app-event-tags", "get", "--account", ACCOUNT, tags[0]["id"], "--json")
    assert code == 0 and orjson.loads(shown)["id"] == tags[0]["id"]
    assert api("app-event-tags", "delete", "--account", ACCOUNT, tags[0]["id"])[0] == 0
    code, listing = api("app-event-tags", "list", "--account", ACCOUNT, "--with-deleted", "--json")
    assert {t["id"]: t["deleted"] for t in orjson.loads(listing)["data"]}[tags[0]["id"]] is True
    assert api("app-event-tags", "get", "--account", ACCOUNT, tags[0]["id"])[0] == 3
    assert api("app-event-tags", "list", "--account", ACCOUNT, "--count", "0")[0] == 3
    code, answer = api(
        "attribution",
        "check",
        "--app-id",
        "333903271",
        "--os-type",
        "IOS",
        "--hashed-device-id",
        "ABCD1234XYZ",
        "--conversion-type",
        "INSTALL",
        "--conversion-time",
        "2013-04-16T07:00:00.123Z",
    )
    assert code == 0 and "attributed to X: CLICK" in answer, answer
    monkeypatch.setenv("RELAY_CONSUMER_SECRET", "wrong")
    monkeypatch.setenv("RELAY_CONSUMER_KEY", "relay-demo-consumer-key")
    monkeypatch.setenv("RELAY_ACCESS_TOKEN", "1000000001-relaydemoaccesstoken")
    monkeypatch.setenv("RELAY_ACCESS_TOKEN_SECRET", "relay-demo-access-token-secret")
    settings = load_settings()
    assert api("app-lists", "list", "--account", ACCOUNT)[0] == 4
