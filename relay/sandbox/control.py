"""The sandbox's own endpoints under `/_sandbox/`: what it received, knows and counted.

They need no authentication and are never counted in the stats.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.responses import XApiError, json_response

PREFIX: Final = "/_sandbox/"


async def get_journal(request: web.Request) -> web.Response:
    """Accepted conversions, oldest first; `?pixel_id=`, `?offset=`, `?limit=` to page."""
    journal = request.app[STATE_KEY].journal
    offset = _count(request, "offset")
    entries, total = journal.page(
        pixel_id=request.query.get("pixel_id"),
        offset=offset or 0,
        limit=_count(request, "limit"),
    )
    return json_response(
        {
            "conversions": entries,
            "total": total,
            "truncated": journal.dropped > 0,
            "dropped": journal.dropped,
        }
    )


async def get_config(request: web.Request) -> web.Response:
    """Accounts, pixels and which token may use which account; no secret."""
    config = request.app[CONFIG_KEY]
    return json_response(
        {
            "accounts": [{"id": a.id, "name": a.name} for a in config.accounts.values()],
            "pixels": [
                {"id": p.id, "account_id": p.account_id, "event_ids": sorted(p.event_ids)}
                for p in config.pixels.values()
            ],
            "tokens": [
                {"access_token": c.access_token, "accounts": sorted(c.accounts)}
                for c in config.credentials
            ],
            "account_limit": config.account_limit,
            "account_window_s": config.account_window_s,
        }
    )


async def get_stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    stats = state.stats.to_json()
    stats["journal"] = {"entries": state.journal.retained, "dropped": state.journal.dropped}
    return json_response(stats)


async def post_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return json_response({"reset": True})


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
