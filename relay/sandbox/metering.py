"""Budgets at the edge of X's routes: the user token pays per request, and every answer says
where the caller's budgets stand.

- Token budget (`x-rate-limit-*`): one request each, taken before the endpoint runs so that
  a spent budget answers 429 with nothing recorded, and given back when the request turns
  out not to be authenticated (401): a forged request cannot spend a real user's budget.
  A request signed with X-Pixel-Token has no user token, hence no token budget.
- Account budget (`x-account-rate-limit-*`): the conversion endpoints spend it (state.py);
  here only its headers are added to their answers, unless the caller failed to prove a
  right to the account (401, 403) or the account is unknown (404).
Both cost O(1) per request: a header split and a few dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from relay.sandbox import mact, web_conversions
from relay.sandbox.auth import token_of
from relay.sandbox.config import SandboxConfig
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.limits import ACCOUNT_PREFIX, TOKEN_PREFIX, too_many_requests
from relay.sandbox.responses import XApiError

TOKEN_KEY: Final = web.RequestKey("budget_token", str)
NOT_THE_CALLERS: Final = frozenset({401, 403})

AccountOf = Callable[[web.Request, SandboxConfig], str | None]


def _pixel_account(request: web.Request, config: SandboxConfig) -> str | None:
    pixel = config.pixels.get(request.match_info.get("pixel_id", ""))
    return pixel.account_id if pixel is not None else None


def _app_account(request: web.Request, config: SandboxConfig) -> str | None:
    app = config.apps.get(request.query.get("app_id", ""))
    return app.account_id if app is not None else None


# The routes that spend an account's budget, by route path, and how to find the account.
ACCOUNT_OF: Final[Mapping[str, AccountOf]] = {
    web_conversions.PATH: _pixel_account,
    mact.EVENT_PATH: _app_account,
    mact.ATTRIBUTION_PATH: _app_account,
}


def _token(request: web.Request, config: SandboxConfig) -> str | None:
    """The budget key of the configured user token the request names, if any."""
    creds = token_of(request, config)
    return f"{creds.consumer_key}\x1f{creds.access_token}" if creds is not None else None


async def charge_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`handler`'s answer, paid by the user token the request names (X's routes only)."""
    key = _token(request, request.app[CONFIG_KEY])
    if key is None:
        return await handler(request)
    state = request.app[STATE_KEY]
    spent, _ = state.token_budget.spend(key, 1, state.clock())
    request[TOKEN_KEY] = key
    if not spent:
        raise too_many_requests()
    try:
        return await handler(request)
    except XApiError as exc:
        if exc.status == 401:
            del request[TOKEN_KEY]
            state.token_budget.refund(key, 1, state.clock())
        raise


_TOKEN_REMAINING: Final = TOKEN_PREFIX + "remaining"
_ACCOUNT_REMAINING: Final = ACCOUNT_PREFIX + "remaining"
_ACCOUNT_RESET: Final = ACCOUNT_PREFIX + "reset"


def budget_headers(request: web.Request, response: web.StreamResponse, account: str | None) -> None:
    """The token's and the account's budget headers (X's routes only; edge.py calls it
    with the answer, `account` from `request_account`)."""
    state = request.app.get(STATE_KEY)
    if state is None:
        return
    now = state.clock()
    headers = response.headers
    key = request.get(TOKEN_KEY)
    if key is not None and _TOKEN_REMAINING not in headers:
        headers.update(state.token_budget.peek(key, now).headers(TOKEN_PREFIX))
    if account is None or response.status in NOT_THE_CALLERS:
        return
    if _ACCOUNT_REMAINING not in headers:  # a fault may have set its own
        headers.update(state.account_budget.peek(account, now).headers(ACCOUNT_PREFIX))
    if response.status == 429:
        state.announce_reset(account, float(headers[_ACCOUNT_RESET]), now)


def request_account(request: web.Request) -> str | None:
    """The ad account whose budget the request's route spends, if any."""
    resource = request.match_info.route.resource
    account_of = ACCOUNT_OF.get(resource.canonical) if resource is not None else None
    return account_of(request, request.app[CONFIG_KEY]) if account_of is not None else None


def note_arrival(request: web.Request, account: str | None) -> None:
    """Counts a request for an account that X told to wait (a 429's reset not yet reached);
    `account` from `request_account`."""
    if account is not None:
        state = request.app[STATE_KEY]
        state.check_reset(account, state.clock())
