"""The sandbox's own endpoints under `/_sandbox/`: what it received, knows and counted.

They need no authentication, are never counted in the stats, and faults never touch them.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from relay.errors import ConfigError
from relay.sandbox import resources
from relay.sandbox.access import Access
from relay.sandbox.attribution import parse_engagements
from relay.sandbox.faults import Faults
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.responses import XApiError, json_response

PREFIX: Final = "/_sandbox/"


async def get_journal(request: web.Request) -> web.Response:
    """Accepted conversions, oldest first; `?pixel_id=`, `?offset=`, `?limit=` to page.

    `?kind=app` lists the app conversions instead (`?app_id=` to filter)."""
    kind = request.query.get("kind", "web")
    if kind not in ("web", "app"):
        raise XApiError.single(400, "INVALID_PARAMETER", "kind must be web or app", "kind")
    state = request.app[STATE_KEY]
    offset = _count(request, "offset") or 0
    limit = _count(request, "limit")
    if kind == "app":
        query = request.query.get("app_id")
        entries, total = state.app_journal.page(app_id=query, offset=offset, limit=limit)
        dropped = state.app_journal.dropped
    else:
        query = request.query.get("pixel_id")
        entries, total = state.journal.page(pixel_id=query, offset=offset, limit=limit)
        dropped = state.journal.dropped
    return json_response(
        {
            "conversions": entries,
            "total": total,
            "truncated": dropped > 0,
            "dropped": dropped,
        }
    )


async def get_config(request: web.Request) -> web.Response:
    """Accounts, pixels and which token may use which account; no secret."""
    config = request.app[CONFIG_KEY]
    return json_response(
        {
            "accounts": [
                {"id": a.id, "name": a.name, "locked": a.locked} for a in config.accounts.values()
            ],
            "pixels": [
                {"id": p.id, "account_id": p.account_id, "event_ids": sorted(p.event_ids)}
                for p in config.pixels.values()
            ],
            "apps": [
                {"id": a.id, "os_type": a.os_type, "account_id": a.account_id, "name": a.name}
                for a in config.apps.values()
            ],
            "tokens": [
                {"access_token": c.access_token, "accounts": sorted(c.accounts)}
                for c in config.credentials
            ],
            "account_limit": config.account_limit,
            "account_window_s": config.account_window_s,
            "token_limit": config.token_limit,
            "token_window_s": config.token_window_s,
        }
    )


async def get_stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    stats = state.stats.to_json()
    stats["journal"] = {"entries": state.journal.retained, "dropped": state.journal.dropped}
    stats["app_journal"] = {
        "entries": state.app_journal.retained,
        "dropped": state.app_journal.dropped,
    }
    return json_response(stats)


async def post_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    resources.reset(request.app)
    return json_response({"reset": True})


async def get_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return json_response(state.faults.to_json(state.clock()))


async def post_faults(request: web.Request) -> web.Response:
    """Replaces the faults in force: a JSON object of faults.Faults' fields."""
    state = request.app[STATE_KEY]
    try:
        faults = Faults.from_json(_json(await request.read()))
    except ConfigError as exc:
        raise XApiError.single(400, "INVALID_PARAMETER", str(exc), "faults") from None
    state.faults.set(faults, state.clock())
    return json_response(state.faults.to_json(state.clock()))


async def delete_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.faults.clear()
    return json_response(state.faults.to_json(state.clock()))


async def get_early_requests(request: web.Request) -> web.Response:
    """Requests that arrived before the reset a 429 had announced to their account (epoch
    seconds): `arrived_at`, the `reset`, and `announced_at` (the first 429 announcing it)."""
    state = request.app[STATE_KEY]
    return json_response(
        {
            "requests": list(state.early_requests),
            "total": state.stats.requests_before_reset,
        }
    )


async def get_access(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].access.to_json())


async def post_access(request: web.Request) -> web.Response:
    """Replaces what is withdrawn: revoked access tokens (401), denied accounts, pixels and
    apps (403/404); see access.py."""
    state = request.app[STATE_KEY]
    try:
        state.access = Access.from_json(_json(await request.read()))
    except ConfigError as exc:
        raise XApiError.single(400, "INVALID_PARAMETER", str(exc), "access") from None
    return json_response(state.access.to_json())


async def delete_access(request: web.Request) -> web.Response:
    """Gives every token and target back."""
    state = request.app[STATE_KEY]
    state.access = Access()
    return json_response(state.access.to_json())


async def get_engagements(request: web.Request) -> web.Response:
    engagements = request.app[STATE_KEY].engagements
    return json_response({"engagements": engagements.to_json(), "total": len(engagements)})


async def post_engagements(request: web.Request) -> web.Response:
    """Adds a JSON list of engagements (all or none); the attribution model uses them."""
    config, state = request.app[CONFIG_KEY], request.app[STATE_KEY]
    try:
        engagements = parse_engagements(_json(await request.read()))
        for engagement in engagements:
            config.check_engagement(engagement)
        state.engagements.add(engagements)
    except (ValueError, ConfigError) as exc:
        raise XApiError.single(400, "INVALID_PARAMETER", str(exc), "engagements") from None
    return json_response({"added": len(engagements), "total": len(state.engagements)})


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ConfigError("the body must be JSON") from None


def _count(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise XApiError.single(
            400, "INVALID_PARAMETER", f"Expected non-negative integer for {name}", name
        )
    return int(text)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "journal", get_journal)
    app.router.add_get(PREFIX + "config", get_config)
    app.router.add_get(PREFIX + "stats", get_stats)
    app.router.add_post(PREFIX + "reset", post_reset)
    app.router.add_get(PREFIX + "faults", get_faults)
    app.router.add_post(PREFIX + "faults", post_faults)
    app.router.add_delete(PREFIX + "faults", delete_faults)
    app.router.add_get(PREFIX + "engagements", get_engagements)
    app.router.add_get(PREFIX + "early-requests", get_early_requests)
    app.router.add_get(PREFIX + "access", get_access)
    app.router.add_post(PREFIX + "access", post_access)
    app.router.add_delete(PREFIX + "access", delete_access)
    app.router.add_post(PREFIX + "engagements", post_engagements)
