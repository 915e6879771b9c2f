"""The sandbox's attribution model: which ad engagement, if any, X claims for an app conversion.

An engagement qualifies for a conversion when it is for the conversion's app and one of its
device ids, happened at or before the conversion, and lies within the click window (CLICK)
or the view-through window (VIEW; a window of 0 days never counts a view). A CLICK beats
any VIEW; among engagements of one kind the most recent wins, a tie going to the one
registered last. Nothing else enters the answer (optional metadata, the time of the call),
so the same conversion always gets the same answer.

Engagements come from the config file (`[[engagements]]`) or `POST /_sandbox/engagements`.
Those marked `tap` were served on the X Audience Platform: X answers them as
`tpn_attribution` instead of `twitter_attribution`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

DAY_MS: Final = 86_400_000
ENGAGEMENT_TYPES: Final = ("CLICK", "VIEW")
DEFAULT_OBJECTIVE: Final = "APP_INSTALLS"
DEFAULT_COUNTRY: Final = "US"
ATTRIBUTION_TYPE: Final = "PROMOTED"

_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

EngagementType = Literal["CLICK", "VIEW"]


def epoch_ms(text: str) -> int | None:
    """`2014-05-22T02:38:28.103Z` -> milliseconds since the epoch; None if not that format."""
    if _TIME.fullmatch(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text)  # the calendar: no February 30, no hour 24
    except ValueError:
        return None
    return (moment - _EPOCH) // _ONE_MS


_REQUIRED_TEXT: Final = ("hashed_device_id", "app_id", "campaign_id", "line_item_id", "account_id")
_OPTIONAL_TEXT: Final = (
    "tweet_id",
    "line_item_objective",
    "campaign_name",
    "country_code",
    "publisher_app_id",
)
_FIELDS: Final = frozenset(
    {*_REQUIRED_TEXT, *_OPTIONAL_TEXT, "engagement_type", "engagement_time", "tap"}
)


@dataclass(frozen=True, slots=True)
class Engagement:
    """One ad engagement of one device with a promoted app; validated when built."""

    hashed_device_id: str
    app_id: str
    engagement_type: EngagementType
    engagement_time: str
    campaign_id: str
    line_item_id: str
    account_id: str
    tweet_id: str | None = None
    line_item_objective: str = DEFAULT_OBJECTIVE
    campaign_name: str | None = None
    country_code: str | None = DEFAULT_COUNTRY
    publisher_app_id: str | None = None
    tap: bool = False
    time_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _REQUIRED_TEXT:
            if not getattr(self, name):
                raise ValueError(f"engagement: {name} is required")
        if self.engagement_type not in ENGAGEMENT_TYPES:
            raise ValueError(
                f"engagement: engagement_type must be CLICK or VIEW, got {self.engagement_type!r}"
            )
        time_ms = epoch_ms(self.engagement_time)
        if time_ms is None:
            raise ValueError(
                "engagement: engagement_time must be yyyy-MM-ddTHH:mm:ss.SSSZ,"
                f" got {self.engagement_time!r}"
            )
        object.__setattr__(self, "time_ms", time_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "hashed_device_id": self.hashed_device_id,
            "app_id": self.app_id,
            "engagement_type": self.engagement_type,
            "engagement_time": self.engagement_time,
            "campaign_id": self.campaign_id,
            "line_item_id": self.line_item_id,
            "account_id": self.account_id,
            "tweet_id": self.tweet_id,
            "line_item_objective": self.line_item_objective,
            "campaign_name": self.campaign_name,
            "country_code": self.country_code,
            "publisher_app_id": self.publisher_app_id,
            "tap": self.tap,
        }

    def attribution(self) -> dict[str, Any]:
        """X's attribution node (`twitter_attribution`, or `tpn_attribution` for TAP)."""
        return {
            "country_code": self.country_code,
            "engagement_time": self.engagement_time,
            "engagement_type": self.engagement_type,
            "attribution_type": ATTRIBUTION_TYPE,
            "promoted_properties": {
                "campaign_id": self.campaign_id,
                "line_item_id": self.line_item_id,
                "account_id": self.account_id,
                "line_item_objective": self.line_item_objective,
                "campaign_name": self.campaign_name,
                "publisher_app_id": self.publisher_app_id,
            },
            "tweet_id": self.tweet_id,
        }


def parse_engagement(raw: Any) -> Engagement:
    """One engagement from JSON or TOML; ValueError naming the problem."""
    if not isinstance(raw, Mapping):
        raise ValueError("engagement: expected an object")
    unknown = sorted(str(key) for key in raw if key not in _FIELDS)
    if unknown:
        raise ValueError(f"engagement: unknown field(s) {', '.join(unknown)}")
    for name in (*_REQUIRED_TEXT, *_OPTIONAL_TEXT, "engagement_type", "engagement_time"):
        value = raw.get(name)
        if value is not None and type(value) is not str:
            raise ValueError(f"engagement: {name} must be a string")
    tap = raw.get("tap", False)
    if type(tap) is not bool:
        raise ValueError("engagement: tap must be true or false")
    kind = raw.get("engagement_type")
    if kind not in ENGAGEMENT_TYPES:
        raise ValueError(f"engagement: engagement_type must be CLICK or VIEW, got {kind!r}")
    return Engagement(
        hashed_device_id=raw.get("hashed_device_id") or "",
        app_id=raw.get("app_id") or "",
        engagement_type=cast(EngagementType, kind),
        engagement_time=raw.get("engagement_time") or "",
        campaign_id=raw.get("campaign_id") or "",
        line_item_id=raw.get("line_item_id") or "",
        account_id=raw.get("account_id") or "",
        tweet_id=raw.get("tweet_id"),
        line_item_objective=raw.get("line_item_objective") or DEFAULT_OBJECTIVE,
        campaign_name=raw.get("campaign_name"),
        country_code=raw.get("country_code", DEFAULT_COUNTRY),
        publisher_app_id=raw.get("publisher_app_id"),
        tap=tap,
    )


def parse_engagements(raw: Any) -> tuple[Engagement, ...]:
    """A list of engagements; ValueError naming the first bad entry."""
    if not isinstance(raw, list):
        raise ValueError("engagements must be a list of objects")
    engagements = []
    for index, entry in enumerate(raw):
        try:
            engagements.append(parse_engagement(entry))
        except ValueError as exc:
            raise ValueError(f"engagements[{index}]: {exc}") from None
    return tuple(engagements)


class Engagements:
    """The engagements the sandbox knows, indexed by app and device id, at most `max_entries`."""

    def __init__(self, initial: Iterable[Engagement], max_entries: int):
        self._initial = tuple(initial)
        self._max = max_entries
        self._all: list[Engagement] = []
        self._by_device: dict[tuple[str, str], list[tuple[int, Engagement]]] = {}
        self.reset()

    def __len__(self) -> int:
        return len(self._all)

    def add(self, engagements: Sequence[Engagement]) -> None:
        """Adds all of them, or none (ValueError) when they would exceed the capacity."""
        if len(self._all) + len(engagements) > self._max:
            raise ValueError(f"the sandbox keeps at most {self._max} engagements")
        for engagement in engagements:
            key = (engagement.app_id, engagement.hashed_device_id)
            self._by_device.setdefault(key, []).append((len(self._all), engagement))
            self._all.append(engagement)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self._all]

    def reset(self) -> None:
        """Back to the configured engagements."""
        self._all.clear()
        self._by_device.clear()
        self.add(self._initial)

    def attribute(
        self,
        app_id: str,
        device_ids: Sequence[str],
        conversion_ms: int,
        click_window_days: int,
        view_through_window_days: int,
    ) -> Engagement | None:
        """The engagement X claims for this conversion, or None."""
        by_device = self._by_device
        if not any((app_id, device_id) in by_device for device_id in device_ids):
            return None  # the usual conversion: no engagement of its devices at all
        windows = {"CLICK": click_window_days * DAY_MS, "VIEW": view_through_window_days * DAY_MS}
        best: dict[str, tuple[int, int, Engagement]] = {}
        for device_id in dict.fromkeys(device_ids):  # each device once, in order
            for seq, engagement in by_device.get((app_id, device_id), ()):
                kind = engagement.engagement_type
                age = conversion_ms - engagement.time_ms
                if age < 0 or age > windows[kind] or (kind == "VIEW" and windows[kind] == 0):
                    continue
                rank = (engagement.time_ms, seq, engagement)
                if kind not in best or rank[:2] > best[kind][:2]:
                    best[kind] = rank
        winner = best.get("CLICK") or best.get("VIEW")
        return winner[2] if winner else None
