"""X's payloads, as typed dicts (the shapes of x-ads-api.md)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

OsType = Literal["IOS", "ANDROID"]


class AppEventTag(TypedDict):
    id: str
    app_store_identifier: str
    os_type: OsType
    conversion_type: str
    provider_app_event_id: str | None
    provider_app_event_name: str | None
    deep_link_scheme: str | None
    post_engagement_attribution_window: int
    post_view_attribution_window: int
    retargeting_enabled: bool
    status: str
    last_tracked_at: str | None
    created_at: str
    updated_at: str
    deleted: bool


class AppStoreApp(TypedDict):
    app_store_identifier: str
    os_type: OsType


class AppList(TypedDict):
    id: str
    name: str
    created_at: NotRequired[str]
    updated_at: NotRequired[str]
    deleted: NotRequired[bool]
    apps: NotRequired[list[AppStoreApp]]


class AppEventProviderConfiguration(TypedDict):
    id: str
    provider_name: str
    provider_advertiser_id: str
    provider_advertiser_identifier: str | None
    created_at: str
    updated_at: str
    deleted: bool


class PromotedProperties(TypedDict):
    campaign_id: str
    line_item_id: str
    account_id: str
    line_item_objective: str
    campaign_name: str | None
    publisher_app_id: str | None


class TwitterAttribution(TypedDict):
    country_code: str | None
    engagement_time: str
    engagement_type: Literal["CLICK", "VIEW"]
    attribution_type: str
    promoted_properties: PromotedProperties
    tweet_id: str | None


class ConversionEventParams(TypedDict):
    """Query parameters of POST conversion_event / GET conversion_attribution."""

    app_id: str
    conversion_time: str
    conversion_type: str
    hashed_device_id: str
    os_type: OsType
    click_window: NotRequired[int]
    view_through_window: NotRequired[int]
    device_ip_address: NotRequired[str]
    level: NotRequired[int]
    number_items: NotRequired[int]
    non_twitter_engagement_time: NotRequired[str]
    non_twitter_engagement_type: NotRequired[Literal["CLICK", "VIEW"]]
    price_currency: NotRequired[str]
    price_micro: NotRequired[int]
    user_payment_info: NotRequired[bool]
    limit_ad_tracking: NotRequired[bool]
    extra_device_ids: NotRequired[str]


Json = dict[str, Any]
