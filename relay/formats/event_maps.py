"""Event names -> X's conversion types, per format (event-formats.md), and what is not one.

The defaults below are overridden per app by the mapping file (`[[apps]]` `appsflyer_events`,
`adjust_tokens`, `branch_events`; "" marks a name that is not a conversion). A name in no
map is dropped as `unmapped_event` (a configuration gap worth a look), a known
non-conversion as `not_a_conversion`; neither is ever dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from relay.errors import DroppedEvent

CONVERSION_TYPES: Final = frozenset(
    {
        "PURCHASE", "SIGN_UP", "INSTALL", "RE_ENGAGE", "UPDATE", "TUTORIAL_COMPLETE",
        "RESERVATION", "ADD_TO_CART", "ADD_TO_WISHLIST", "LOGIN", "CHECKOUT_INITIATED",
        "SEARCH", "LEVEL_ACHIEVED", "ACHIEVEMENT_UNLOCKED", "CONTENT_VIEW", "SHARE", "INVITE",
        "ADDED_PAYMENT_INFO", "SPENT_CREDITS", "RATED",
    }
)  # fmt: skip

APPSFLYER_EVENTS: Final[Mapping[str, str]] = {
    "install": "INSTALL",
    "re-engagement": "RE_ENGAGE",
    "re-attribution": "RE_ENGAGE",
    "af_re_engage": "RE_ENGAGE",
    "af_update": "UPDATE",
    "af_purchase": "PURCHASE",
    "af_complete_registration": "SIGN_UP",
    "af_tutorial_completion": "TUTORIAL_COMPLETE",
    "af_travel_booking": "RESERVATION",
    "af_add_to_cart": "ADD_TO_CART",
    "af_add_to_wishlist": "ADD_TO_WISHLIST",
    "af_login": "LOGIN",
    "af_initiated_checkout": "CHECKOUT_INITIATED",
    "af_search": "SEARCH",
    "af_level_achieved": "LEVEL_ACHIEVED",
    "af_achievement_unlocked": "ACHIEVEMENT_UNLOCKED",
    "af_content_view": "CONTENT_VIEW",
    "af_share": "SHARE",
    "af_invite": "INVITE",
    "af_add_payment_info": "ADDED_PAYMENT_INFO",
    "af_spent_credits": "SPENT_CREDITS",
    "af_rate": "RATED",
}
APPSFLYER_NOT_CONVERSIONS: Final = ("af_opened_from_push_notification", "af_location_",
                                    "af_ad_click", "af_ad_view")  # fmt: skip

BRANCH_EVENTS: Final[Mapping[str, str]] = {
    "INSTALL": "INSTALL",
    "PURCHASE": "PURCHASE",
    "COMPLETE_REGISTRATION": "SIGN_UP",
    "COMPLETE_TUTORIAL": "TUTORIAL_COMPLETE",
    "RESERVE": "RESERVATION",
    "ADD_TO_CART": "ADD_TO_CART",
    "ADD_TO_WISHLIST": "ADD_TO_WISHLIST",
    "LOGIN": "LOGIN",
    "INITIATE_PURCHASE": "CHECKOUT_INITIATED",
    "SEARCH": "SEARCH",
    "ACHIEVE_LEVEL": "LEVEL_ACHIEVED",
    "UNLOCK_ACHIEVEMENT": "ACHIEVEMENT_UNLOCKED",
    "VIEW_ITEM": "CONTENT_VIEW",
    "VIEW_ITEMS": "CONTENT_VIEW",
    "SHARE": "SHARE",
    "INVITE": "INVITE",
    "ADD_PAYMENT_INFO": "ADDED_PAYMENT_INFO",
    "SPEND_CREDITS": "SPENT_CREDITS",
    "RATE": "RATED",
}
BRANCH_NOT_CONVERSIONS: Final = frozenset(
    {"VIEW_CART", "SUBSCRIBE", "START_TRIAL", "CLICK_AD", "VIEW_AD", "REINSTALL", "OPEN",
     "CLICK", "WEB_SESSION_START", "PAGEVIEW"}
)  # fmt: skip

ADJUST_ACTIVITIES: Final[Mapping[str, str]] = {
    "install": "INSTALL",
    "reattribution": "RE_ENGAGE",
    "reattribution_reinstall": "RE_ENGAGE",
}
ADJUST_NOT_CONVERSIONS: Final = frozenset(
    {"session", "click", "impression", "uninstall", "reinstall", "att_update", "sk_install"}
)

# Segment (web): the event name -> event_id map is per pixel, in the mapping file only.
SEGMENT_NOT_CONVERSIONS: Final = frozenset({"page", "screen", "identify", "group", "alias"})


def map_event(
    name: str,
    overrides: Mapping[str, str] | None,
    defaults: Mapping[str, str],
    not_conversions: frozenset[str] | tuple[str, ...] = frozenset(),
) -> str:
    """The conversion type of an event name, or DroppedEvent with a bounded reason."""
    mapped = overrides.get(name) if overrides else None
    if mapped is None:
        mapped = defaults.get(name)
    if mapped:
        return mapped
    if mapped == "" or _listed(name, not_conversions):
        raise DroppedEvent("not_a_conversion")
    raise DroppedEvent("unmapped_event")


def _listed(name: str, names: frozenset[str] | tuple[str, ...]) -> bool:
    if isinstance(names, tuple):  # prefixes: AppsFlyer's af_location_* family
        return name.startswith(names)
    return name in names
