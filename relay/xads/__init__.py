"""The X Ads API: the async client, OAuth 1.0a signing, and the errors it raises."""

from relay.xads.client import (
    AccountResource,
    AppConversionResult,
    Page,
    WebConversionsResult,
    XAdsClient,
)
from relay.xads.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    NotSent,
    RateLimited,
    RateLimitInfo,
    ServerError,
    TransportError,
    Unauthorized,
)

__all__ = [
    "AccountResource",
    "ApiError",
    "AppConversionResult",
    "BadRequest",
    "Forbidden",
    "NotFound",
    "NotSent",
    "Page",
    "RateLimitInfo",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "WebConversionsResult",
    "XAdsClient",
]
