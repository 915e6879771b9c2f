"""X's measurement management resources, one generic implementation configured per kind:

    /11|12/accounts/:account_id/app_event_tags[/:id]
    /12/accounts/:account_id/app_lists[/:id]
    /11|12/accounts/:account_id/app_event_provider_configurations[/:id]

GET list (ids filter up to 200, count 1..1000 default 200, cursor, sort_by, with_deleted,
with_total_count exclusive with cursor, and at most 200 such requests per token per 15
minutes), GET one (with_deleted), POST create (query parameters), DELETE (answers the item
with `deleted: true`). OAuth 1.0a; the token must be allowed on the account (403
ACCOUNT_NOT_FOUND) and the account not locked (403 ACCOUNT_LOCKED_OUT). Answers echo the
parameters as X does: id lists as lists, the item's id under the name X gives it.

The store starts with the config's seeds (seeds.py) and returns to them on reset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from relay.sandbox.auth import check_account, signed_request, verify_oauth
from relay.sandbox.config import SandboxConfig, SandboxCredentials
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.limits import TOKEN_PREFIX, FixedWindowBudget, too_many_requests
from relay.sandbox.mact_params import (
    CLICK_WINDOWS,
    CONVERSION_TYPES,
    INVALID,
    MISSING,
    OS_TYPES,
    VIEW_THROUGH_WINDOWS,
)
from relay.sandbox.responses import ErrorDetail, XApiError, json_response
from relay.sandbox.seeds import (
    APP_EVENT_TAGS,
    APP_LISTS,
    DEFAULT_DEEP_LINK_SCHEME,
    NEW_TAG_CLICK_WINDOW,
    NEW_TAG_VIEW_WINDOW,
    PROVIDER_CONFIGURATIONS,
    PROVIDER_NAME,
    Seed,
    app_os_type,
)

MAX_IDS: Final = 200
DEFAULT_COUNT: Final = 200
MAX_COUNT: Final = 1000
MAX_APP_LISTS: Final = 100
MAX_APPS_PER_LIST: Final = 500
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
    """One resource: its paths, parameters, and how a create request becomes an item."""

    name: str
    versions: tuple[str, ...]  # every API version X documents it under
    ids_param: str
    not_found: str
    create_params: frozenset[str]
    build: Callable[[Query, list[Item]], Item]  # (query, the account's items) -> new fields
    get_id_param: str  # the name X echoes the item's id under, in GET one
    delete_id_param: str  # and in DELETE
    list_fields: tuple[str, ...] | None = None  # what list shows (None: everything)
    sort_fields: frozenset[str] = frozenset({"created_at", "updated_at", "id", "name"})
    list_params: frozenset[str] = frozenset()  # comma lists X echoes as lists (create)
    data_type: str | None = None  # X's `data_type` beside `data` in GET one

    @property
    def collections(self) -> tuple[str, ...]:
        return tuple(f"/{v}/accounts/{{account_id}}/{self.name}" for v in self.versions)


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
        "deep_link_scheme": q.text("deep_link_scheme") or DEFAULT_DEEP_LINK_SCHEME,
        "post_engagement_attribution_window": q.choice(
            "post_engagement_attribution_window", CLICK_WINDOWS, NEW_TAG_CLICK_WINDOW
        ),
        "post_view_attribution_window": q.choice(
            "post_view_attribution_window", VIEW_THROUGH_WINDOWS, NEW_TAG_VIEW_WINDOW
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
    return {
        "name": name,
        "apps": [{"app_store_identifier": a, "os_type": app_os_type(a)} for a in apps],
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
        "provider_advertiser_identifier": advertiser,
    }


KINDS: Final = (
    Kind(
        APP_EVENT_TAGS,
        ("11", "12"),  # seed 003 documents v11, the others v12
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
        get_id_param="app_event_tag_id",
        delete_id_param="id",
    ),
    Kind(
        APP_LISTS,
        ("12",),
        "app_list_ids",
        "NOT_FOUND",
        frozenset({"name", "app_store_identifiers"}),
        _app_list,
        get_id_param="app_list_id",
        delete_id_param="app_list_id",
        list_fields=("id", "name"),
        list_params=frozenset({"app_store_identifiers"}),
    ),
    Kind(
        PROVIDER_CONFIGURATIONS,
        ("11", "12"),  # documented under v11; v12 serves it too
        "ids",
        "NOT_FOUND",
        frozenset({"provider_advertiser_id"}),
        _provider_configuration,
        get_id_param="id",
        delete_id_param="id",
        data_type="app_event_provider_configuration",
    ),
)
KINDS_BY_NAME: Final = {kind.name: kind for kind in KINDS}


@dataclass
class ResourceStore:
    """Items per (kind, account), in creation order; ids are short base-36 strings, unique
    across kinds. Starts with `seeds` and goes back to them on `reset`."""

    seeds: tuple[Seed, ...] = ()
    items: dict[tuple[str, str], list[Item]] = field(default_factory=dict)
    next_id: int = 1_000
    _taken: set[str] = field(default_factory=set)
    # (account, app, os_type, conversion_type) -> live tag; None: to rebuild on next use
    _tag_index: dict[tuple[str, str, str, str], Item] | None = None

    def __post_init__(self) -> None:
        self.reset()

    def of(self, kind: Kind, account_id: str) -> list[Item]:
        return self.items.setdefault((kind.name, account_id), [])

    def new_id(self) -> str:
        while True:
            self.next_id += 1
            n, digits = self.next_id, ""
            while n:
                n, rest = divmod(n, 36)
                digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
            if digits not in self._taken:
                self._taken.add(digits)
                return digits

    def changed(self) -> None:
        """Call after creating or deleting an item: look-ups are rebuilt."""
        self._tag_index = None

    def reset(self) -> None:
        self.changed()
        self.items.clear()
        self._taken = {str(s.item["id"]) for s in self.seeds if "id" in s.item}
        self.next_id = 1_000
        for seed in self.seeds:
            item = {"id": seed.item.get("id") or self.new_id(), **seed.item, "deleted": False}
            self.of(KINDS_BY_NAME[seed.kind], seed.account_id).append(item)

    def live(self, kind_name: str, account_id: str) -> list[Item]:
        return [i for i in self.items.get((kind_name, account_id), ()) if not i["deleted"]]

    def any_live(self, kind_name: str, account_id: str) -> bool:
        return any(not item["deleted"] for item in self.items.get((kind_name, account_id), ()))

    def app_event_tag(
        self, account_id: str, app_id: str, os_type: str, conversion_type: str
    ) -> Item | None:
        """The live tag of this app for this conversion type (the latest, if several)."""
        index = self._tag_index
        if index is None:
            index = self._tag_index = {
                (account, i["app_store_identifier"], i["os_type"], i["conversion_type"]): i
                for (kind, account), items in self.items.items()
                if kind == APP_EVENT_TAGS
                for i in items
                if not i["deleted"]
            }
        return index.get((account_id, app_id, os_type, conversion_type))


RESOURCES_KEY: Final = web.AppKey("resources", ResourceStore)
TOTAL_COUNT_KEY: Final = web.AppKey("total_count_budget", FixedWindowBudget)


def _now(request: web.Request) -> str:
    return datetime.fromtimestamp(request.app[STATE_KEY].clock(), UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def _caller(request: web.Request) -> tuple[str, SandboxCredentials]:
    """The path's account and the verified credentials allowed on it."""
    config = request.app[CONFIG_KEY]
    creds = verify_oauth(await signed_request(request), config)
    account_id = request.match_info["account_id"]
    check_account(creds, account_id, config)
    return account_id, creds


async def _account(request: web.Request) -> str:
    return (await _caller(request))[0]


def _echo(account_id: str, params: Params, as_lists: frozenset[str]) -> dict[str, Any]:
    """`request.params` as X shows them: comma lists as lists, then the account."""
    echoed: dict[str, Any] = {
        k: [i.strip() for i in v.split(",") if i.strip()] if k in as_lists else v
        for k, v in params.items()
    }
    echoed["account_id"] = account_id
    return echoed


def _charge_total_count(
    request: web.Request, config: SandboxConfig, creds: SandboxCredentials
) -> dict[str, str]:
    """X's lower limit on list requests with `with_total_count`: 429 past it. Returns the
    headers of that budget, which such requests answer with."""
    state = request.app[STATE_KEY]
    budget = request.app[TOTAL_COUNT_KEY]
    key = f"{creds.consumer_key}\x1f{creds.access_token}"
    spent, after = budget.spend(key, 1, state.clock())
    headers = after.headers(TOKEN_PREFIX)
    if not spent:
        error = too_many_requests()
        error.headers.update(headers)
        raise error
    return headers


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
        account_id, creds = await _caller(request)
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
        limit_headers = (
            _charge_total_count(request, request.app[CONFIG_KEY], creds) if with_total else {}
        )
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
            "request": {"params": _echo(account_id, q.params, frozenset({kind.ids_param}))},
            "next_cursor": f"c{start + count}" if more else None,
            "data": view,
        }
        if with_total:
            body["total_count"] = len(items)
        response = json_response(body)
        response.headers.update(limit_headers)
        return response

    return handle


def get_handler(kind: Kind) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        account_id = await _account(request)
        q = Query(request.query, frozenset({"with_deleted"}))
        item_id = request.match_info["item_id"]
        item = _find(
            kind,
            request.app[RESOURCES_KEY].of(kind, account_id),
            item_id,
            q.boolean("with_deleted", False),
        )
        params = {kind.get_id_param: item_id, **q.params}
        body: dict[str, Any] = {"request": {"params": _echo(account_id, params, frozenset())}}
        if kind.data_type is not None:
            body["data_type"] = kind.data_type
        body["data"] = item
        return json_response(body)

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
        store.changed()
        return json_response(
            {"request": {"params": _echo(account_id, q.params, kind.list_params)}, "data": item}
        )

    return handle


def delete_handler(kind: Kind) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        account_id = await _account(request)
        Query(request.query, frozenset())
        item_id = request.match_info["item_id"]
        item = _find(
            kind, request.app[RESOURCES_KEY].of(kind, account_id), item_id, with_deleted=False
        )
        item["deleted"] = True
        item["updated_at"] = _now(request)
        request.app[RESOURCES_KEY].changed()
        params = _echo(account_id, {kind.delete_id_param: item_id}, frozenset())
        return json_response({"request": {"params": params}, "data": item})

    return handle


def add_routes(app: web.Application, kinds: tuple[Kind, ...] = KINDS) -> None:
    config = app[CONFIG_KEY]
    app[RESOURCES_KEY] = ResourceStore(config.seeds)
    app[TOTAL_COUNT_KEY] = FixedWindowBudget(config.total_count_limit, config.total_count_window_s)
    for kind in kinds:
        for collection in kind.collections:
            one = collection + "/{item_id}"
            app.router.add_get(collection, list_handler(kind))
            app.router.add_post(collection, create_handler(kind))
            app.router.add_get(one, get_handler(kind))
            app.router.add_delete(one, delete_handler(kind))


def reset(app: web.Application) -> None:
    """Back to the seeds; the with_total_count budget starts over."""
    app[RESOURCES_KEY].reset()
    app[TOTAL_COUNT_KEY].clear()
