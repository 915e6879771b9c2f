"""X's response shapes: JSON bodies, the error body and the error a handler raises.

Error body, as X sends it:
`{"errors":[{"code":..,"message":..,"parameter":..}],"request":{"params":{..}}}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

API_VERSION: Final = "12"
API_VERSION_HEADER: Final = "x-current-api-version"


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One entry of X's `errors` list."""

    code: str
    message: str
    parameter: str | None = None

    def to_json(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            body["parameter"] = self.parameter
        return body


class XApiError(Exception):
    """Raised by handlers; the app answers it with X's error body and `status`."""

    def __init__(
        self,
        status: int,
        errors: Iterable[ErrorDetail],
        params: Mapping[str, str] | None = None,
    ):
        self.status = status
        self.errors = tuple(errors)
        self.params = dict(params or {})
        self.headers: dict[str, str] = {}  # e.g. the budget a 429 ran out of
        super().__init__(f"{status} " + ", ".join(e.code for e in self.errors))

    @classmethod
    def single(
        cls,
        status: int,
        code: str,
        message: str,
        parameter: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> XApiError:
        return cls(status, (ErrorDetail(code, message, parameter),), params)

    def response(self) -> web.Response:
        body = {
            "errors": [e.to_json() for e in self.errors],
            "request": {"params": self.params},
        }
        response = json_response(body, self.status)
        response.headers.update(self.headers)
        return response


# The same header as `content_type="application/json"`, at half the cost of aiohttp's parsing it.
_JSON_HEADERS: Final = {"Content-Type": "application/json"}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=_JSON_HEADERS)
