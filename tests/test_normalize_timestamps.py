from __future__ import annotations

import pytest

from relay.errors import InvalidEvent
from relay.normalize.timestamps import MAX_EPOCH_MS, normalize_time


def test_normalized_form_is_returned_as_is() -> None:
    text = "2022-02-18T01:14:00.603Z"
    assert normalize_time(text) is text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2022-02-18T01:14:00Z", "2022-02-18T01:14:00.000Z"),  # no milliseconds
        ("2022-02-18T01:14Z", "2022-02-18T01:14:00.000Z"),  # no seconds
        ("2022-02-18T01:14:00.603z", "2022-02-18T01:14:00.603Z"),
        ("2022-02-18T01:14:00.1Z", "2022-02-18T01:14:00.100Z"),
        ("2022-02-18T01:14:00.603999Z", "2022-02-18T01:14:00.603Z"),  # truncated, not rounded
        ("2022-02-18T01:14:00.603999999Z", "2022-02-18T01:14:00.603Z"),  # nanoseconds
        ("2022-02-18T03:14:00.603+02:00", "2022-02-18T01:14:00.603Z"),
        ("2022-02-18T06:44:00.603+0530", "2022-02-18T01:14:00.603Z"),
        ("2022-02-17T20:14:00-05:00", "2022-02-18T01:14:00.000Z"),  # offset crosses the day
        ("2022-02-18T01:14:00.603+00:00", "2022-02-18T01:14:00.603Z"),
        ("2022-02-18T01:14:00,603Z", "2022-02-18T01:14:00.603Z"),  # ISO decimal comma
        ("2022-02-18 01:14:00.603Z", "2022-02-18T01:14:00.603Z"),  # space separator
        ("  2022-02-18T01:14:00.603Z ", "2022-02-18T01:14:00.603Z"),
        ("1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
    ],
)
def test_iso_forms(given: str, expected: str) -> None:
    assert normalize_time(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1645146840603, "2022-02-18T01:14:00.603Z"),
        ("1645146840603", "2022-02-18T01:14:00.603Z"),
        (" 1645146840603 ", "2022-02-18T01:14:00.603Z"),
        (1645146840603.0, "2022-02-18T01:14:00.603Z"),  # an integral float
        (0, "1970-01-01T00:00:00.000Z"),
        (MAX_EPOCH_MS, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_epoch_milliseconds(given: int | float | str, expected: str) -> None:
    assert normalize_time(given) == expected


@pytest.mark.parametrize(
    "zoneless", ["2022-02-18T01:14:00.603", "2022-02-18T01:14:00", "2022-02-18", "2022-02-18 01:14"]
)
def test_zoneless_iso_is_invalid(zoneless: str) -> None:
    with pytest.raises(InvalidEvent, match="no time zone") as err:
        normalize_time(zoneless)
    assert err.value.field == "conversion_time"


@pytest.mark.parametrize(
    "bad",
    [
        "2022-02-30T01:14:00.603Z",  # the fast path still checks the calendar
        "2022-13-01T01:14:00.603Z",
        "2022-02-18T24:00:00.000Z",
        "２０２２-02-18T01:14:00.603Z",  # full-width digits
        "2022-02-18T01:14:00.60xZ",
        "yesterday",
        "",
        "-1645146840603",
        "1645146840603.5",
        "2022-02-18T01:14:00.603Z trailing",
    ],
)
def test_malformed_strings_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        normalize_time(bad)
    assert err.value.field == "conversion_time"


@pytest.mark.parametrize(
    "bad",
    [
        True,
        False,
        None,
        1645146840603.5,
        float("nan"),
        float("inf"),
        [1645146840603],
        {"ms": 1645146840603},
    ],
)
def test_wrong_types_are_invalid(bad: object) -> None:
    with pytest.raises(InvalidEvent, match="ISO-8601 string with a time zone or epoch"):
        normalize_time(bad)


@pytest.mark.parametrize(
    "out_of_range",
    [
        -1,
        MAX_EPOCH_MS + 1,
        10**30,
        1e300,
        "9" * 16,
        "9" * 100_000,  # no ValueError from int()'s digit limit
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:30:00+01:00",  # 1969 in UTC
        "9999-12-31T23:00:00-05:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_out_of_range_is_invalid(out_of_range: object) -> None:
    with pytest.raises(InvalidEvent, match=r"1970\.\.9999") as err:
        normalize_time(out_of_range)
    assert err.value.field == "conversion_time"


def test_field_name_is_passed_through() -> None:
    with pytest.raises(InvalidEvent) as err:
        normalize_time("nope", "non_twitter_engagement_time")
    assert err.value.field == "non_twitter_engagement_time"
