"""The sandbox's OpenAPI 3 document, built from the same tables the handlers use, so the two
cannot drift: the MACT parameter lists, the management resource kinds, the web endpoint."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from relay.sandbox.mact_params import ATTRIBUTION_PARAMS, EVENT_PARAMS, REQUIRED
from relay.sandbox.resources import KINDS, LIST_PARAMS, Kind
from relay.sandbox.responses import json_response

Schema = dict[str, Any]

ERROR_BODY: Final[Schema] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "parameter": {"type": "string"},
                },
            },
        },
        "request": {"type": "object"},
    },
}
OBJECT: Final[Schema] = {"type": "object"}
NULLABLE_OBJECT: Final[Schema] = {"type": "object", "nullable": True}
ERRORS: Final = ("400", "401", "403", "404", "405", "429", "500", "503")
OAUTH: Final[list[Schema]] = [{"oauth1": []}]


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: Schema) -> Schema:
    responses = {"200": _json(ok, "X's answer")}
    responses.update({status: _json(ERROR_BODY, "X's error body") for status in ERRORS})
    return responses


def _query(name: str, required: bool = False) -> Schema:
    schema: Schema = {"type": "string", "minLength": 1} if required else {"type": "string"}
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _path(name: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-z]{1,32}$"},
    }


def _data(schema: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": schema, "request": OBJECT},
    }


def _mact(params: frozenset[str], summary: str) -> Schema:
    attribution = {
        "type": "object",
        "required": ["twitter_attribution"],
        "properties": {"twitter_attribution": NULLABLE_OBJECT},
    }
    return {
        "summary": summary,
        "security": OAUTH,
        "parameters": [_query(p, p in REQUIRED) for p in sorted(params)],
        "responses": _responses(_data(attribution)),
    }


def _resource_paths(kind: Kind) -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for collection in kind.collections:
        paths.update(_collection_paths(kind, collection))
    return paths


def _collection_paths(kind: Kind, collection: str) -> dict[str, Schema]:
    account = _path("account_id")
    listing = {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": OBJECT},
            "next_cursor": {"type": "string", "nullable": True},
            "total_count": {"type": "integer"},
            "request": OBJECT,
        },
    }
    return {
        collection: {
            "get": {
                "summary": f"list {kind.name}",
                "security": OAUTH,
                "parameters": [
                    account,
                    *(_query(p) for p in sorted(LIST_PARAMS | {kind.ids_param})),
                ],
                "responses": _responses(listing),
            },
            "post": {
                "summary": f"create one of {kind.name}",
                "security": OAUTH,
                "parameters": [account, *(_query(p) for p in sorted(kind.create_params))],
                "responses": _responses(_data(OBJECT)),
            },
        },
        collection + "/{item_id}": {
            "get": {
                "summary": f"one of {kind.name}",
                "security": OAUTH,
                "parameters": [account, _path("item_id"), _query("with_deleted")],
                "responses": _responses(_data(OBJECT)),
            },
            "delete": {
                "summary": f"delete one of {kind.name}",
                "security": OAUTH,
                "parameters": [account, _path("item_id")],
                "responses": _responses(_data(OBJECT)),
            },
        },
    }


def _control(summary: str, params: tuple[str, ...] = ()) -> Schema:
    return {
        "get": {
            "summary": summary,
            "parameters": [_query(p) for p in params],
            "responses": {"200": _json(OBJECT, summary), "400": _json(ERROR_BODY, "bad parameter")},
        }
    }


def openapi_document() -> Schema:
    conversions = {
        "type": "object",
        "required": ["conversions"],
        "properties": {"conversions": {"type": "array", "items": OBJECT}},
    }
    processed = {
        "type": "object",
        "required": ["conversions_processed", "debug_id"],
        "properties": {
            "conversions_processed": {"type": "integer"},
            "debug_id": {"type": "string"},
        },
    }
    paths: dict[str, Schema] = {
        "/12/measurement/conversions/{pixel_id}": {
            "post": {
                "summary": "web conversions, up to 500 per request",
                "security": [{"oauth1": []}, {"pixelToken": []}],
                "parameters": [_path("pixel_id")],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": conversions}},
                },
                "responses": _responses(_data(processed)),
            }
        },
        "/12/conversion_event": {"post": _mact(EVENT_PARAMS, "record an app conversion")},
        "/12/conversion_attribution": {"get": _mact(ATTRIBUTION_PARAMS, "attribution only")},
        "/_sandbox/journal": _control(
            "accepted conversions", ("kind", "pixel_id", "app_id", "offset", "limit")
        ),
        "/_sandbox/config": _control("accounts, pixels, apps, tokens (no secrets)"),
        "/_sandbox/stats": _control("counters"),
        "/_sandbox/faults": _control("the faults in force"),
        "/_sandbox/engagements": _control("engagements for attribution"),
        "/_sandbox/access": _control("tokens revoked, accounts, pixels and apps denied"),
        "/_sandbox/early-requests": _control("requests before their account's announced reset"),
    }
    for kind in KINDS:
        paths.update(_resource_paths(kind))
    return {
        "openapi": "3.0.3",
        "info": {"title": "X Ads API sandbox (conversion relay)", "version": "12"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "oauth1": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "OAuth 1.0a, HMAC-SHA1",
                },
                "pixelToken": {"type": "apiKey", "in": "header", "name": "X-Pixel-Token"},
            }
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sandbox/openapi.json", get_openapi)
