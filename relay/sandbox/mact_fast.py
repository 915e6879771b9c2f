"""`POST /12/conversion_event`'s fast path: the usual request, which every check passes,
answered in one straight pass from the parsed request (http11.py) to the answer, without
aiohttp's request, the edge's layers (edge.py) or aiohttp's response.

The usual request: no body and no form content type; a query of conversion_event's
parameters (the five required ones among them), once each, their values of unreserved
characters, `:` and `/`, and the upper-case escapes of `:/+=` (what the relay and
`relay bench sandbox` send); an `Authorization: OAuth` header of the usual shape, signed
by configured credentials with Ads API access; no fault, capacity limit or access
withdrawal in force; a known app on an unlocked account of the token's user, the
account's provider configuration and the app's event tag for the type; room in both
budgets. Then the answer is the full path's, step for step: the same signature check (the
sandbox's own, oauth1.py), parameter checks (mact_params.py), budgets, journal and body
(`mact.recorded_event`), counters and headers.

For anything else (a connection already closing too) `answer` returns None and the full
path (routing.py, edge.py, mact.py) answers, with its exact error. Nothing is recorded
before the fast path is sure to answer: the nonce, its first record, is taken once every
other check has passed (a replayed or stale one declines: the full path answers its 401).
"""

from __future__ import annotations

import re
from typing import Final

import orjson
from aiohttp import web
from multidict import MultiDict

from relay.sandbox import oauth1
from relay.sandbox.auth import FORM_CONTENT_TYPE
from relay.sandbox.capacity import IN_FLIGHT_KEY
from relay.sandbox.http11 import Answer, HttpRequest
from relay.sandbox.keys import CONFIG_KEY, STATE_KEY
from relay.sandbox.limits import ACCOUNT_PREFIX, TOKEN_PREFIX
from relay.sandbox.mact import EVENT_PATH, STORE_ID, recorded_event
from relay.sandbox.mact_params import (
    EVENT_PARAMS,
    REQUIRED,
    AppConversion,
    checked_app_conversion,
    usual_conversion,
)
from relay.sandbox.resources import RESOURCES_KEY
from relay.sandbox.responses import API_VERSION, API_VERSION_HEADER, XApiError
from relay.sandbox.seeds import PROVIDER_CONFIGURATIONS

ENDPOINT: Final = f"POST {EVENT_PATH}"  # as edge.py counts it
# conversion_event's parameters, once each, their values of unreserved characters, `:` and
# `/` (which aiohttp's client leaves as they are) and escapes; `answer` takes only the
# upper-case escapes of `:/` and `+=` (base64 device ids).
_NAME: Final = "(?:" + "|".join(sorted(EVENT_PARAMS)) + ")"
_VALUE: Final = "[A-Za-z0-9._~:/%-]+"
_USUAL_QUERY: Final = re.compile(rf"{_NAME}={_VALUE}(?:&{_NAME}={_VALUE})*", re.ASCII)
_REQUIRED_SET: Final = frozenset(REQUIRED)
_REQUIRED_OAUTH: Final = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_nonce",
    "oauth_timestamp",
    "oauth_signature_method",
)
# The usual header's parameters besides the signature. With the query's names, none is a
# prefix of another: `oauth1.base_string_of_pairs` sorts them (checked below).
_USUAL_OAUTH: Final = frozenset((*_REQUIRED_OAUTH, "oauth_version"))
_JSON: Final = ("Content-Type", "application/json")
_VERSION: Final = (API_VERSION_HEADER, API_VERSION)
_TOKEN_NAMES: Final = tuple(TOKEN_PREFIX + n for n in ("limit", "remaining", "reset"))
_ACCOUNT_NAMES: Final = tuple(ACCOUNT_PREFIX + n for n in ("limit", "remaining", "reset"))
_FORM: Final = FORM_CONTENT_TYPE.encode()


def _no_name_is_a_prefix(names: frozenset[str]) -> bool:
    return not any(a != b and b.startswith(a) for a in names for b in names)


assert _no_name_is_a_prefix(_USUAL_OAUTH | EVENT_PARAMS)


def _usual_params(parts: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """The query's parameters decoded (as yarl decodes them) and encoded (as RFC 5849
    does, `name=value`); None unless every escape is one of those `_USUAL_QUERY` takes,
    or when a name repeats."""
    params = {}
    encoded = []
    for part in parts:
        name, _, value = part.partition("=")
        if "%" in value:
            value = (
                value.replace("%3A", ":")
                .replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "=")
            )
            if "%" in value:
                return None
        params[name] = value
        if ":" in part or "/" in part:
            part = part.replace(":", "%3A").replace("/", "%2F")
        encoded.append(part)
    return (params, encoded) if len(params) == len(parts) else None


def _conversion(params: dict[str, str]) -> AppConversion | None:
    """The conversion as mact_params.parse_app_conversion reads a query of these
    parameters (the required ones among them, none repeated); None for one it refuses."""
    if params.keys() == _REQUIRED_SET:
        return usual_conversion(params)
    try:
        return checked_app_conversion(MultiDict(params), EVENT_PARAMS)
    except XApiError:
        return None


class ConversionEventFastPath:
    """The fast path of one sandbox application (set up: its state, config and stores)."""

    def __init__(self, app: web.Application):
        self._config = app[CONFIG_KEY]
        self._state = app[STATE_KEY]
        self._store = app[RESOURCES_KEY]
        self._in_flight = app[IN_FLIGHT_KEY]
        self.answered = 0  # requests this path answered (the others went the full path)

    def answer(self, request: HttpRequest, query: str) -> Answer | None:
        """The answer to `request` (POST /12/conversion_event, `query` its raw query);
        None when the full path must answer."""
        config, state = self._config, self._state
        if (
            request.body
            or request.body_too_large
            or request.transport.is_closing()
            or request.authorization is None
            or request.host is None
            or self._in_flight[0] >= config.max_in_flight
            or state.faults.applies_to(EVENT_PATH)
            or state.access.active
            or _USUAL_QUERY.fullmatch(query) is None
        ):
            return None
        content_type = request.content_type
        if content_type is not None and content_type.partition(b";")[0].strip().lower() == _FORM:
            return None  # its body would be signed (and decoded)
        usual = _usual_params(query.split("&"))
        if usual is None:
            return None
        params, pairs = usual
        if not params.keys() >= _REQUIRED_SET:
            return None  # the full path says which is missing

        # OAuth 1.0a, as auth.verify_oauth checks it.
        header = oauth1.parse_header(request.authorization.decode("utf-8", "surrogateescape"))
        if not header:
            return None
        signature = header.pop("oauth_signature", "")
        if (
            not signature
            or not all(header.get(name) for name in _REQUIRED_OAUTH)
            or header["oauth_signature_method"] != oauth1.HMAC_SHA1
            or header.get("oauth_version", oauth1.VERSION) != oauth1.VERSION
            or not header.keys() <= _USUAL_OAUTH
            or not oauth1.is_encoded("".join(header.values()))
        ):
            return None
        creds = config.credentials_for(header["oauth_consumer_key"], header["oauth_token"])
        if creds is None or not creds.ads_api_access:
            return None
        host = request.host.decode("utf-8", "surrogateescape")
        pairs += [f"{name}={value}" for name, value in header.items()]
        text = oauth1.base_string_of_pairs(
            "POST", oauth1.encoded_base_uri("http", host, EVENT_PATH), pairs
        )
        if not oauth1.signature_matches(oauth1.hmac_sha1(creds.signing_key, text), signature):
            return None

        # The app, the account, the parameters, the tag: mact._checked and _tag_windows.
        app_id = params["app_id"]
        app = config.apps.get(app_id)
        if app is None or STORE_ID.fullmatch(app_id) is None:
            return None
        account_id = app.account_id
        account = config.accounts.get(account_id)
        if account_id not in creds.accounts or (account is not None and account.locked):
            return None
        conversion = _conversion(params)
        if conversion is None or conversion.os_type != app.os_type:
            return None
        store = self._store
        if not store.any_live(PROVIDER_CONFIGURATIONS, account_id):
            return None
        tag = store.app_event_tag(account_id, app.id, app.os_type, conversion.conversion_type)
        if tag is None:
            return None
        click = conversion.click_window
        view = conversion.view_through_window
        if click is None:
            click = tag["post_engagement_attribution_window"]
        if view is None:
            view = tag["post_view_attribution_window"]
        if click < view:
            return None

        # Both budgets must have room (a spend that does not fit changes nothing).
        token_key = f"{creds.consumer_key}\x1f{creds.access_token}"
        now = state.clock()
        if (
            state.token_budget.room(token_key, now) < 1
            or state.account_budget.room(account_id, now) < 1
        ):
            return None
        # The last check, and the first record: a nonce is taken only by an answer.
        if not state.replay.admit(
            creds.consumer_key, creds.access_token, header["oauth_nonce"], header["oauth_timestamp"]
        ):
            return None

        # Recorded in the full path's order: the arrival, the token's request, the event.
        state.check_reset(account_id, state.clock())
        state.token_budget.take(token_key, 1, state.clock())
        body = orjson.dumps(recorded_event(state, app, conversion, creds, click, view))
        state.stats.record(ENDPOINT, 200, (), creds.access_token)
        now = state.clock()
        token_limit, token_remaining, token_reset = state.token_budget.header_values(token_key, now)
        limit, remaining, reset = state.account_budget.header_values(account_id, now)
        headers = (
            _JSON,
            _VERSION,
            (_TOKEN_NAMES[0], token_limit),
            (_TOKEN_NAMES[1], token_remaining),
            (_TOKEN_NAMES[2], token_reset),
            (_ACCOUNT_NAMES[0], limit),
            (_ACCOUNT_NAMES[1], remaining),
            (_ACCOUNT_NAMES[2], reset),
        )
        self.answered += 1
        return Answer(200, headers, body, "OK")
