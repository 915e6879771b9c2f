"""`relay api`: the measurement management endpoints from the command line.

Readable tables by default, `--json` for scripts. Exit codes: 0 done, 2 bad usage or
settings, 3 X rejected the request (400/403/404), 4 X rejects the credentials (401),
5 X unavailable (429, 5xx, timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TextIO, cast

import orjson

from relay.config import Settings
from relay.xads.client import AccountResource, ParamValue, XAdsClient
from relay.xads.egress import Egress
from relay.xads.errors import ApiError, Unauthorized
from relay.xads.models import ConversionEventParams

EXIT_USAGE: Final = 2
EXIT_REJECTED: Final = 3
EXIT_UNAUTHORIZED: Final = 4
EXIT_UNAVAILABLE: Final = 5


@dataclass(frozen=True)
class ResourceSpec:
    attribute: str  # the XAdsClient attribute
    required: tuple[str, ...]  # create parameters
    optional: tuple[str, ...]
    columns: tuple[str, ...]  # table columns


RESOURCES: Final = {
    "app-event-tags": ResourceSpec(
        "app_event_tags",
        (
            "app_store_identifier",
            "conversion_type",
            "os_type",
            "provider_app_event_id",
            "provider_app_event_name",
        ),
        (
            "deep_link_scheme",
            "post_engagement_attribution_window",
            "post_view_attribution_window",
            "retargeting_enabled",
        ),
        (
            "id",
            "app_store_identifier",
            "os_type",
            "conversion_type",
            "post_engagement_attribution_window",
            "post_view_attribution_window",
            "deleted",
        ),
    ),
    "app-lists": ResourceSpec(
        "app_lists",
        ("name", "app_store_identifiers"),
        (),
        ("id", "name", "deleted"),
    ),
    "provider-configs": ResourceSpec(
        "provider_configs",
        ("provider_advertiser_id",),
        (),
        ("id", "provider_name", "provider_advertiser_id", "deleted"),
    ),
}

ATTRIBUTION_REQUIRED: Final = (
    "app_id",
    "os_type",
    "hashed_device_id",
    "conversion_type",
    "conversion_time",
)
ATTRIBUTION_OPTIONAL: Final = (
    "click_window",
    "view_through_window",
    "non_twitter_engagement_time",
    "non_twitter_engagement_type",
    "extra_device_ids",
)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


class JsonUsageParser(argparse.ArgumentParser):
    """A parser whose usage errors, when `--json` is among its arguments, are the JSON error
    of `relay api` on stdout (exit 2), so that a script reads one shape of failure."""

    wants_json = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.wants_json = "--json" in (sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        if not self.wants_json:
            super().error(message)
        self.print_usage(sys.stderr)
        sys.exit(report_failure(True, EXIT_USAGE, "usage", f"{self.prog}: {message}"))


def add_api_parser(sub: Any) -> None:
    api = sub.add_parser(
        "api",
        help="X's measurement management endpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # add_parser builds its parsers' class: `relay api` itself answers usage errors as JSON too.
    api.__class__ = JsonUsageParser
    resources = api.add_subparsers(
        dest="resource", required=True, metavar="RESOURCE", parser_class=JsonUsageParser
    )
    for name, spec in RESOURCES.items():
        resource = resources.add_parser(name, help=f"{name}: list, get, create, delete")
        verbs = resource.add_subparsers(dest="verb", required=True, metavar="VERB")
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--account", required=True, help="ad account id, e.g. 18ce54d4x5t")
        common.add_argument("--json", action="store_true", help="print X's JSON")
        listing = verbs.add_parser("list", parents=[common], help="list (one page or --all)")
        listing.add_argument("--ids", help="comma-separated ids (up to 200)")
        listing.add_argument("--count", type=int, help="per page, 1..1000 (X's default 200)")
        listing.add_argument("--cursor")
        listing.add_argument("--sort-by", help="e.g. created_at-asc")
        listing.add_argument("--with-deleted", action="store_true")
        listing.add_argument("--with-total-count", action="store_true")
        listing.add_argument("--all", action="store_true", help="follow next_cursor to the end")
        get = verbs.add_parser("get", parents=[common], help="one by id")
        get.add_argument("id")
        get.add_argument("--with-deleted", action="store_true")
        create = verbs.add_parser("create", parents=[common], help="create one")
        for param in spec.required:
            create.add_argument(_option(param), dest=param, required=True)
        for param in spec.optional:
            create.add_argument(_option(param), dest=param)
        delete = verbs.add_parser("delete", parents=[common], help="delete one by id")
        delete.add_argument("id")
    attribution = resources.add_parser("attribution", help="attribution check")
    verbs = attribution.add_subparsers(dest="verb", required=True, metavar="VERB")
    check = verbs.add_parser("check", help="what X would attribute, recording nothing")
    for param in ATTRIBUTION_REQUIRED:
        check.add_argument(_option(param), dest=param, required=True)
    for param in ATTRIBUTION_OPTIONAL:
        check.add_argument(_option(param), dest=param)
    check.add_argument("--json", action="store_true", help="print X's JSON")


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _run(args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    async with XAdsClient(
        settings.api_base_url, settings.credentials, egress=Egress.from_settings(settings)
    ) as client:
        if args.resource == "attribution":
            given = {p: getattr(args, p) for p in (*ATTRIBUTION_REQUIRED, *ATTRIBUTION_OPTIONAL)}
            query = {k: v for k, v in given.items() if v is not None}
            data = await client.conversion_attribution(cast(ConversionEventParams, query))
            _print(out, args.json, [data], data, ("app_id", "conversion_type"))
            if not args.json:
                found = data.get("twitter_attribution")
                out.write(
                    "attributed to X: "
                    + (
                        f"{found['engagement_type']} at {found['engagement_time']}"
                        if found
                        else "no"
                    )
                    + "\n"
                )
            return
        spec = RESOURCES[args.resource]
        resource: AccountResource[Any] = getattr(client, spec.attribute)
        if args.verb == "list":
            await _list(resource, args, spec, out)
        elif args.verb == "get":
            item = await resource.get(args.account, args.id, with_deleted=args.with_deleted or None)
            _print(out, args.json, [item], item, spec.columns)
        elif args.verb == "create":
            params: dict[str, ParamValue] = {
                p: getattr(args, p)
                for p in (*spec.required, *spec.optional)
                if getattr(args, p) is not None
            }
            item = await resource.create(args.account, **params)
            _print(out, args.json, [item], item, spec.columns)
        else:
            item = await resource.delete(args.account, args.id)
            _print(out, args.json, [item], item, spec.columns)


async def _list(
    resource: AccountResource[Any], args: argparse.Namespace, spec: ResourceSpec, out: TextIO
) -> None:
    if args.all:
        items = [
            i
            async for i in resource.iterate(
                args.account,
                count=args.count,
                sort_by=args.sort_by,
                with_deleted=args.with_deleted or None,
            )
        ]
        _print(out, args.json, items, {"data": items}, spec.columns)
        return
    page = await resource.list(
        args.account,
        ids=args.ids.split(",") if args.ids else None,
        count=args.count,
        cursor=args.cursor,
        sort_by=args.sort_by,
        with_deleted=args.with_deleted or None,
        with_total_count=args.with_total_count or None,
    )
    body: dict[str, Any] = {
        "request": page.request,
        "next_cursor": page.next_cursor,
        "data": page.data,
    }
    if page.total_count is not None:
        body["total_count"] = page.total_count
    _print(out, args.json, page.data, body, spec.columns)
    if not args.json and page.next_cursor:
        out.write(f"more: --cursor {page.next_cursor}\n")


def _print(
    out: TextIO, as_json: bool, rows: Sequence[Any], body: Any, columns: Sequence[str]
) -> None:
    if as_json:
        out.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(render_table(rows, columns) + "\n")


CREDENTIAL_VARIABLES: Final = (
    "RELAY_CONSUMER_KEY",
    "RELAY_CONSUMER_SECRET",
    "RELAY_ACCESS_TOKEN",
    "RELAY_ACCESS_TOKEN_SECRET",
)


def report_failure(
    as_json: bool,
    code: int,
    reason: str,
    message: str,
    errors: Any = None,
    out: TextIO | None = None,
) -> int:
    """One error, as JSON on stdout with `--json` (scripts read one stream), else a line on
    stderr."""
    if as_json:
        body: dict[str, Any] = {"error": {"exit_code": code, "reason": reason, "message": message}}
        if errors:
            body["error"]["errors"] = errors
        (out or sys.stdout).write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(f"relay api: {message}", file=sys.stderr)
    return code


def run_api(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    as_json = bool(getattr(args, "json", False))
    if not settings.credentials.complete:
        # Signing with empty credentials would only earn a 401 that blames the wrong thing.
        return report_failure(
            as_json,
            EXIT_USAGE,
            "credentials_not_set",
            "X credentials are not set: set "
            + ", ".join(CREDENTIAL_VARIABLES)
            + " (or their *_FILE), or name a file with [credentials] in RELAY_CONFIG",
            None,
            out,
        )
    try:
        asyncio.run(_run(args, settings, out))
    except Unauthorized as err:
        return report_failure(
            as_json,
            EXIT_UNAUTHORIZED,
            "unauthorized",
            f"X rejects the credentials: {err}",
            err.errors,
            out,
        )
    except ApiError as err:
        detail = "; ".join(
            f"{e.get('code')}: {e.get('message')}" for e in err.errors if isinstance(e, dict)
        ) or str(err)
        code = EXIT_UNAVAILABLE if err.retryable else EXIT_REJECTED
        reason = "unavailable" if err.retryable else "rejected"
        return report_failure(as_json, code, reason, detail, err.errors, out)
    return 0
