"""Readers for the fields of a decoded JSON record, shared by every adapter.

Each reader validates one field and raises `InvalidEvent` naming it (never quoting its
value). Absent, null and blank strings are all "absent". `prefix` locates a nested field
("contents[0].", "event_value."); it is joined to the name only on error, so valid events
build no labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from relay.errors import InvalidEvent
from relay.normalize.identifiers import check_sha256, trimmed

MAX_ID_CHARS: Final = 64

T = TypeVar("T")


def present(obj: dict[str, Any], name: str) -> Any:
    """The field's value; None when absent, null or a blank string."""
    value = obj.get(name)
    if isinstance(value, str) and (not value or value.isspace()):
        return None
    return value


def required(record: dict[str, Any], name: str, prefix: str = "") -> Any:
    value = present(record, name)
    if value is None:
        raise InvalidEvent(f"{prefix}{name} is required", field=prefix + name)
    return value


def string(obj: dict[str, Any], name: str, prefix: str = "") -> str | None:
    value = present(obj, name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidEvent(f"{prefix}{name} must be a string", field=prefix + name)


def trimmed_string(record: dict[str, Any], name: str, prefix: str = "") -> str | None:
    value = string(record, name, prefix)
    return trimmed(value) if value else None


def hashed(record: dict[str, Any], name: str) -> str | None:
    value = string(record, name)
    return check_sha256(value, name) if value else None


def id_text(obj: dict[str, Any], name: str, prefix: str = "") -> str | None:
    """An id that producers send as a string or an integer."""
    value = present(obj, name)
    if value is None or isinstance(value, str):
        return value.strip() if value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidEvent(f"{prefix}{name} must be a string or an integer", field=prefix + name)


def optional(
    obj: dict[str, Any], name: str, normalize: Callable[[object, str], T], prefix: str = ""
) -> T | None:
    value = present(obj, name)
    return None if value is None else normalize(value, prefix + name)


def base36(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"{field} must be a string", field=field)
    text = value.strip()
    if not (len(text) <= MAX_ID_CHARS and text.isascii() and text.isalnum()):
        raise InvalidEvent(f"{field} must be a base-36 id (letters and digits)", field=field)
    return text


def obj(record: dict[str, Any], name: str, prefix: str = "") -> dict[str, Any]:
    """A nested object; {} when absent or null."""
    value = record.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"{prefix}{name} must be an object", field=prefix + name)
    return value


_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


def flag(obj: dict[str, Any], name: str, prefix: str = "") -> bool | None:
    """A boolean as feeds send it: true/false, 1/0, or those as strings (any case)."""
    value = present(obj, name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidEvent(f"{prefix}{name} must be a boolean", field=prefix + name)


def integer(value: object, field: str) -> int:
    """An integer as feeds send it: 3, 3.0 or "3"."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidEvent(f"{field} must be an integer", field=field)
