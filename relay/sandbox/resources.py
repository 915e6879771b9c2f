"""X's measurement management resources, one generic implementation configured per kind:

    /12/accounts/:account_id/app_event_tags[/:id]
    /12/accounts/:account_id/app_lists[/:id]
    /11/accounts/:account_id/app_event_provider_configurations[/:id]

GET list (ids filter up to 200, count 1..1000 default 200, cursor, sort_by, with_deleted,
with_total_count exclusive with cursor), GET one (with_deleted), POST create (query
parameters), DELETE (answers the item with `deleted: true`). OAuth 1.0a; the token must be
allowed on the account (403 ACCOUNT_NOT_FOUND).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from relay.sandbox.auth import check_account, signed_request, verify_oauth
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.mact_params import CONVERSION_TYPES, INVALID, MISSING, OS_TYPES
from relay.sandbox.responses import ErrorDetail, XApiError, json_response

MAX_IDS: Final = 200
DEFAULT_COUNT: Final = 200
MAX_COUNT: Final = 1000
MAX_APP_LISTS: Final = 100
MAX_APPS_PER_LIST: Final = 500
PROVIDER_NAME: Final = "RELAY_SANDBOX"
LIST_PARAMS: Final = frozenset({"count", "cursor", "sort_by", "with_deleted", "with_total_count"})

Item = dict[str, Any]
Params = dict[str, str]


def bad(message: str, parameter: str, code: str = INVALID) -> XApiError:
    return XApiError(400, (ErrorDetail(code, message, parameter),))


class Query:
    """Typed reads of X's query parameters, with X's 400s."""

    def __init__(self, query: MultiMapping[str], allowed: frozenset[str]):
        for name in query:
            if name not in allowed:
                raise bad(f"{name} is not a parameter of this endpoint", name)
            if len(query.getall(name)) > 1:
                raise bad(f"{name} was given more than once", name)
        self.params: Params = {k: query[k] for k in query}

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.params.get(name, "").strip()
        if not value:
            if required:
                raise bad(f"{name} is required", name, MISSING)
            return None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        if value not in ("true", "false"):
            raise bad(f"{name} must be true or false", name)
        return value == "true"

    def choice(self, name: str, options: tuple[int, ...], default: int) -> int:
        value = self.params.get(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) not in options:
            raise bad(f"{name} must be one of {', '.join(map(str, options))}", name)
        return int(value)

    def ids(self, name: str) -> list[str] | None:
        value = self.text(name)
        if value is None:
            return None
        ids = [i.strip() for i in value.split(",") if i.strip()]
        if len(ids) > MAX_IDS:
            raise bad(f"{name} takes at most {MAX_IDS} ids", name)
        return ids


@dataclass(frozen=True)
class Kind:
    """One resource: its path, parameters, and how a create request becomes an item."""

    name: str
    version: str
    ids_param: str
    not_found: str
    create_params: frozenset[str]
    build: Callable[[Query, list[Item]], Item]  # (query, the account's items) -> new fields
    list_fields: tuple[str, ...] | None = None  # what list shows (None: everything)
    sort_fields: frozenset[str] = frozenset({"created_at", "updated_at", "id", "name"})

    @property
    def collection(self) -> str:
        return f"/{self.version}/accounts/{{account_id}}/{self.name}"


def _app_event_tag(q: Query, _: list[Item]) -> Item:
    conversion_type = q.text("conversion_type", required=True)
    if conversion_type not in CONVERSION_TYPES:
        raise bad("conversion_type is not a known conversion type", "conversion_type")
    os_type = q.text("os_type", required=True)
    if os_type not in OS_TYPES:
        raise bad("os_type must be IOS or ANDROID", "os_type")
    return {
        "app_store_identifier": q.text("app_store_identifier", required=True),
        "os_type": os_type,
        "conversion_type": conversion_type,
        "provider_app_event_id": q.text("provider_app_event_id", required=True),
        "provider_app_event_name": q.text("provider_app_event_name", required=True),
        "deep_link_scheme": q.text("deep_link_scheme"),
        "post_engagement_attribution_window": q.choice(
            "post_engagement_attribution_window", (1, 7, 14, 30), 30
        ),
        "post_view_attribution_window": q.choice(
            "post_view_attribution_window", (0, 1, 7, 14, 30), 1
        ),
        "retargeting_enabled": q.boolean("retargeting_enabled", True),
        "status": "TRACKING",
        "last_tracked_at": None,
    }


def _app_list(q: Query, existing: list[Item]) -> Item:
    name = q.text("name", required=True)
    raw = q.text("app_store_identifiers", required=True) or ""
    apps = [a.strip() for a in raw.split(",") if a.strip()]
    if len(apps) > MAX_APPS_PER_LIST:
        raise bad(f"An app list holds at most {MAX_APPS_PER_LIST} apps", "app_store_identifiers")
    if sum(1 for i in existing if not i["deleted"]) >= MAX_APP_LISTS:
        raise bad(f"An account holds at most {MAX_APP_LISTS} app lists", "name")
    # Store ids of iOS apps are numeric; Android ones are package names.
    return {
        "name": name,
        "apps": [
            {"app_store_identifier": a, "os_type": "IOS" if a.isdigit() else "ANDROID"}
            for a in apps
        ],
    }


def _provider_configuration(q: Query, existing: list[Item]) -> Item:
    advertiser = q.text("provider_advertiser_id", required=True)
    if any(not i["deleted"] for i in existing):
        raise bad(
            "Only one app event provider configuration is allowed per account",
            "provider_advertiser_id",
        )
    return {
        "provider_name": PROVIDER_NAME,
        "provider_advertiser_id": advertiser,
        "provider_advertiser_identifier": None,
    }


KINDS: Final = (
    Kind(
        "app_event_tags",
        "12",
        "app_event_tag_ids",
        "APP_EVENT_TAG_NOT_FOUND",
        frozenset(
            {
                "app_store_identifier",
                "conversion_type",
                "os_type",
                "provider_app_event_id",
                "provider_app_event_name",
                "deep_link_scheme",
                "post_engagement_attribution_window",
                "post_view_attribution_window",
                "retargeting_enabled",
            }
        ),
        _app_event_tag,
    ),
    Kind(
        "app_lists",
        "12",
        "app_list_ids",
        "NOT_FOUND",
        frozenset({"name", "app_store_identifiers"}),
        _app_list,
        list_fields=("id", "name"),
    ),
    Kind(
        "app_event_provider_configurations",
        "11",
        "ids",
        "NOT_FOUND",
        frozenset({"provider_advertiser_id"}),
        _provider_configuration,
    ),
)


@dataclass
class ResourceStore:
    """Items per (kind, account), in creation order; ids are short base-36 strings."""

    items: dict[tuple[str, str], list[Item]] = field(default_factory=dict)
    next_id: int = 1_000

    def of(self, kind: Kind, account_id: str) -> list[Item]:
        return self.items.setdefault((kind.name, account_id), [])

    def new_id(self) -> str:
        self.next_id += 1
        n, digits = self.next_id, ""
        while n:
            n, rest = divmod(n, 36)
            digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
        return digits

    def clear(self) -> None:
        self.items.clear()


RESOURCES_KEY: Final = web.AppKey("resources", ResourceStore)


def _now(request: web.Request) -> str:
    return datetime.fromtimestamp(request.app[STATE_KEY].clock(), UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def _account(request: web.Request) -> str:
    config = request.app[CONFIG_KEY]
    creds = verify_oauth(await signed_request(request), config)
    account_id = request.match_info["account_id"]
    check_account(creds, account_id)
    return account_id


def _find(kind: Kind, items: list[Item], item_id: str, with_deleted: bool) -> Item:
    for item in items:
        if item["id"] == item_id and (with_deleted or not item["deleted"]):
            return item
    raise XApiError.single(
        404, kind.not_found, f"{kind.name} {item_id} was not found", kind.name.rstrip("s") + "_id"
    )


def _cursor(value: str | None) -> int:
    if value is None:
        return 0
    if not (value.startswith("c") and value[1:].isdigit()):
        raise bad("cursor is not a cursor this endpoint gave out", "cursor")
    return int(value[1:])


def _sort(kind: Kind, items: list[Item], sort_by: str | None) -> list[Item]:
    if sort_by is None:
        return items
    name, _, direction = sort_by.rpartition("-")
    if name not in kind.sort_fields or direction not in ("asc", "desc"):
        raise bad(
            f"sort_by must be <field>-asc|desc over {', '.join(sorted(kind.sort_fields))}",
            "sort_by",
        )
    return sorted(items, key=lambda i: str(i.get(name) or ""), reverse=direction == "desc")


def list_handler(kind: Kind) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        account_id = await _account(request)
        q = Query(request.query, LIST_PARAMS | {kind.ids_param})
        count_text = q.text("count")
        if count_text is None:
            count = DEFAULT_COUNT
        elif not count_text.isdigit() or not 1 <= int(count_text) <= MAX_COUNT:
            raise bad(f"count must be a whole number from 1 to {MAX_COUNT}", "count")
        else:
            count = int(count_text)
        with_total = q.boolean("with_total_count", False)
        if with_total and q.text("cursor") is not None:
            raise bad(
                "cursor and with_total_count are exclusive",
                "with_total_count",
                "EXCLUSIVE_PARAMETERS",
            )
        start = _cursor(q.text("cursor"))
        with_deleted = q.boolean("with_deleted", False)
        ids = q.ids(kind.ids_param)
        items = [
            i
            for i in request.app[RESOURCES_KEY].of(kind, account_id)
            if (with_deleted or not i["deleted"]) and (ids is None or i["id"] in ids)
        ]
        items = _sort(kind, items, q.text("sort_by"))
        page = items[start : start + count]
        more = start + count < len(items)
        view = [{f: i.get(f) for f in kind.list_fields} if kind.list_fields else i for i in page]
        body: dict[str, Any] = {
            "request": {"params": {"account_id": account_id, **q.params}},
            "next_cursor": f"c{start + count}" if more else None,
            "data": view,
        }
        if with_total:
            body["total_count"] = len(items)
        return json_response(body)

    return handle


def get_handler(kind: Kind) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        account_id = await _account(request)
        q = Query(request.query, frozenset({"with_deleted"}))
        item = _find(
            kind,
            request.app[RESOURCES_KEY].of(kind, account_id),
            request.match_info["item_id"],
            q.boolean("with_deleted", False),
        )
        return json_response(
            {"request": {"params": {"account_id": account_id, **q.params}}, "data": item}
        )

    return handle


def create_handler(kind: Kind) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        account_id = await _account(request)
        q = Query(request.query, kind.create_params)
        store = request.app[RESOURCES_KEY]
        items = store.of(kind, account_id)
        now = _now(request)
        item: Item = {
            "id": store.new_id(),
            **kind.build(q, items),
            "created_at": now,
            "updated_at": now,
            "deleted": False,
        }
        items.append(item)
        return json_response(
            {"request": {"params": {"account_id": account_id, **q.params}}, "data": item}
        )

    return handle


def delete_handler(kind: Kind) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        account_id = await _account(request)
        Query(request.query, frozenset())
        item = _find(
            kind,
            request.app[RESOURCES_KEY].of(kind, account_id),
            request.match_info["item_id"],
            with_deleted=False,
        )
        item["deleted"] = True
        item["updated_at"] = _now(request)
        return json_response({"request": {"params": {"account_id": account_id}}, "data": item})

    return handle


def add_routes(app: web.Application, kinds: tuple[Kind, ...] = KINDS) -> None:
    app[RESOURCES_KEY] = ResourceStore()
    for kind in kinds:
        one = kind.collection + "/{item_id}"
        app.router.add_get(kind.collection, list_handler(kind))
        app.router.add_post(kind.collection, create_handler(kind))
        app.router.add_get(one, get_handler(kind))
        app.router.add_delete(one, delete_handler(kind))


def reset(app: web.Application) -> None:
    app[RESOURCES_KEY].clear()
