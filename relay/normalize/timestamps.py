"""Conversion times to X's `yyyy-MM-ddTHH:mm:ss.SSSZ` (UTC, milliseconds, `Z`).

Accepted:
- ISO-8601 with `Z` (or `z`) or a UTC offset, with or without (fractional) seconds; digits
  beyond milliseconds are truncated, never rounded;
- epoch milliseconds as an integer, an integral float or a string of digits.

A zone-less ISO string is INVALID: its instant is unknown, and assuming UTC would silently
shift conversions by hours. Years 1970..9999 (in UTC) are accepted; whether a time is
plausible (not too old, not in the future) is not decided here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from relay.errors import InvalidEvent

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MAX_EPOCH_DIGITS: Final = len(str(MAX_EPOCH_MS))


def normalize_time(value: object, field: str = "conversion_time") -> str:
    """Any accepted form -> X's UTC millisecond string; InvalidEvent(field=field) otherwise."""
    if isinstance(value, str):
        return _from_text(value, field)
    if isinstance(value, int) and not isinstance(value, bool):  # a bool is never a time
        return _from_epoch_ms(value, field)
    if isinstance(value, float) and value.is_integer():
        return _from_epoch_ms(int(value), field)
    raise InvalidEvent(
        f"{field} must be an ISO-8601 string with a time zone or epoch milliseconds", field=field
    )


def _from_text(text: str, field: str) -> str:
    if _looks_normalized(text):
        # Most producers already send X's form: validate the calendar and return it as is.
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise InvalidEvent(f"{field} is not a valid date and time", field=field) from None
        return text
    text = text.strip()
    if text.isascii() and text.isdigit():
        if len(text) > _MAX_EPOCH_DIGITS:
            raise _out_of_range(field)
        return _from_epoch_ms(int(text), field)
    if text.endswith("z"):
        text = text[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(
            f"{field} is not an ISO-8601 time or epoch milliseconds", field=field
        ) from None
    if moment.tzinfo is None:
        raise InvalidEvent(
            f"{field} has no time zone: add Z or a UTC offset (X requires UTC)", field=field
        )
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise _out_of_range(field) from None
    if moment.year < _EPOCH.year:
        raise _out_of_range(field)
    return _format(moment)


def _looks_normalized(text: str) -> bool:
    # Separators at 4, 7, 10, 13, 16, 19 ("--T::.") and the Z; fromisoformat checks the digits.
    return len(text) == 24 and text[4:20:3] == "--T::." and text[23] == "Z" and text >= "1970"


def _from_epoch_ms(ms: int, field: str) -> str:
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise _out_of_range(field)
    return _format(_EPOCH + timedelta(milliseconds=ms))


def _format(moment: datetime) -> str:
    # Milliseconds truncated, as X wants. %-formatting measured 1.0 us against 1.7 us for
    # isoformat(timespec=...) and 2.1 us for the equivalent f-string.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def _out_of_range(field: str) -> InvalidEvent:
    return InvalidEvent(f"{field} is outside the years 1970..9999 (UTC)", field=field)
