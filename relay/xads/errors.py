"""Errors of the X Ads API client.

    ApiError                     X answered with an error status, or could not be reached
    ├── TransportError           timeout, refused or dropped connection (retryable)
    ├── BadRequest               400: the request (a web batch) is invalid
    ├── Unauthorized             401: the credentials are wrong; pause, don't retry each event
    ├── Forbidden                403: this token may not use that account
    ├── NotFound                 404: no such pixel, app, tag, account or route
    ├── RateLimited              429: wait until the reset time
    └── ServerError              408, 423, 5xx: retryable

    NotSent                      not an answer: the caller's last check refused the request
                                 once it had a connection; nothing reached X

Every error carries the HTTP status, X's first error code, message and parameter, the whole
errors list, and the rate-limit headers; `retryable` says whether trying again may succeed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final

RETRYABLE_STATUSES: Final = frozenset({408, 423, 429, 500, 502, 503, 504})


class NotSent(Exception):
    """The request was withheld at the last moment (see `XAdsClient`'s `admit`): X saw nothing."""


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """X's rate-limit headers: the account's when present, else the user token's."""

    limit: int | None = None
    remaining: int | None = None
    reset_epoch_s: float | None = None
    retry_after_s: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        def number(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        prefix = (
            "x-account-rate-limit-"
            if "x-account-rate-limit-remaining" in headers
            else ("x-rate-limit-")
        )
        reset = number(prefix + "reset")
        return cls(
            limit=number(prefix + "limit"),
            remaining=number(prefix + "remaining"),
            reset_epoch_s=float(reset) if reset is not None else None,
            retry_after_s=retry_after_s(headers.get("retry-after"), time.time()),
        )


def retry_after_s(value: str | None, now_epoch_s: float) -> float | None:
    """`Retry-After` as seconds, from delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch_s)
    except (TypeError, ValueError):
        return None


class ApiError(Exception):
    """X answered with an error, or could not be reached."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        parameter: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        rate_limit: RateLimitInfo | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.parameter = parameter
        self.errors = errors or []
        self.rate_limit = rate_limit or RateLimitInfo()

    def __str__(self) -> str:
        where = f" ({self.parameter})" if self.parameter else ""
        return f"{self.status or '-'} {self.code or 'ERROR'}: {self.message}{where}"


class TransportError(ApiError):
    retryable = True


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class RateLimited(ApiError):
    retryable = True


class ServerError(ApiError):
    retryable = True


_BY_STATUS: Final[Mapping[int, type[ApiError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    429: RateLimited,
}


def error_for_status(status: int) -> type[ApiError]:
    """The error class of an HTTP status (the status wins over a body that says otherwise)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status in RETRYABLE_STATUSES or status >= 500:
        return ServerError
    return ApiError
