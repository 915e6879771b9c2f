"""What the web adapters (`web`, `segment`) share: the pixel's account and event ids, and
X's `contents` array."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relay.config import MappingFile
from relay.errors import InvalidEvent
from relay.formats.fields import base36

ContentItem = Callable[[dict[str, Any], str], dict[str, Any]]


def account_for_pixel(given: object, pixel_id: str, mapping: MappingFile) -> str:
    """The event's ad account: as given (checked against the mapping) or from the mapping."""
    mapped = mapping.account_for_pixel(pixel_id)
    if given is None:
        if mapped is None:
            raise InvalidEvent(
                f"pixel {pixel_id} is not in the mapping and the event has no account_id",
                field="pixel_id",
                error_class="unknown_pixel",
            )
        return mapped
    account_id = base36(given, "account_id")
    if mapped is not None and account_id != mapped:
        raise InvalidEvent(
            f"account_id {account_id} does not own pixel {pixel_id} (the mapping says {mapped})",
            field="account_id",
        )
    return account_id


def event_of_pixel(
    event_id: object, pixel_id: str, mapping: MappingFile, field: str = "event_id"
) -> tuple[str, str]:
    """(event_id as sent, the event tag's own base-36 id); `tw-<pixel>-<id>` is accepted."""
    if not isinstance(event_id, str):
        raise InvalidEvent(f"{field} must be a string", field=field)
    event_id = event_id.strip()
    key = event_id
    if event_id.startswith("tw-"):
        prefix = f"tw-{pixel_id}-"
        if not event_id.startswith(prefix):
            raise InvalidEvent(f"{field} is not of the form tw-{pixel_id}-<event id>", field=field)
        key = event_id[len(prefix) :]
    key = base36(key, field)
    pixel = mapping.pixels.get(pixel_id)
    if pixel is not None and pixel.event_ids and key not in pixel.event_ids:
        raise InvalidEvent(f"{field} {key} is not an event of pixel {pixel_id}", field=field)
    return event_id, key


def contents(value: object, field: str, item: ContentItem) -> list[dict[str, Any]] | None:
    """X's contents array from a list of objects: empty items and an empty array left out."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidEvent(f"{field} must be a list", field=field)
    built: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        at = f"{field}[{index}]"
        if not isinstance(entry, dict):
            raise InvalidEvent(f"{at} must be an object", field=at)
        content = {key: part for key, part in item(entry, at + ".").items() if part is not None}
        if content:
            built.append(content)
    return built or None
