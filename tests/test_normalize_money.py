from __future__ import annotations

import time

import pytest

from relay.errors import InvalidEvent
from relay.normalize.money import (
    ISO_4217_CODES,
    MAX_QUANTITY,
    normalize_amount,
    normalize_currency,
    normalize_quantity,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("20.00", "20.00"),  # kept as given
        ("0.5", "0.5"),
        ("7", "7"),
        (100.99, "100.99"),  # the float's shortest repr, not its binary expansion
        (20.0, "20.0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (20, "20"),
        (0, "0"),
        (" 20.5 ", "20.5"),
        ("020.00", "20.00"),
        ("1e3", "1000"),
        ("1.5E-2", "0.015"),
        ("+4.99", "4.99"),
        ("-0", "0"),
        (-0.0, "0.0"),
        ("999999999999999", "999999999999999"),  # 15 integer digits
        (1e-5, "0.00001"),
    ],
)
def test_amount_forms(given: object, expected: str) -> None:
    assert normalize_amount(given, "value") == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-inf", "finite"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("-1", "negative"),
        ("-0.01", "negative"),
        (-1, "negative"),
        (-2.5, "negative"),
        ("abc", "not a decimal"),
        ("", "not a decimal"),
        ("1,5", "not a decimal"),
        ("20.00 USD", "not a decimal"),
        (True, "must be a decimal"),
        (False, "must be a decimal"),
        (None, "must be a decimal"),
        ([20], "must be a decimal"),
        ({"amount": 20}, "must be a decimal"),
        ("1000000000000000", "out of range"),
        (1e16, "out of range"),
        (10**40, "out of range"),
        (1e-300, "out of range"),
        ("1" * 100_000, "out of range"),
    ],
)
def test_bad_amounts(bad: object, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message) as err:
        normalize_amount(bad, "value")
    assert err.value.field == "value"


def test_huge_exponents_are_refused_quickly() -> None:
    started = time.perf_counter()
    for bad in ("1e999999999", "1e-999999999"):
        with pytest.raises(InvalidEvent, match="out of range"):
            normalize_amount(bad, "value")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("given", "expected"), [("usd", "USD"), (" eur ", "EUR"), ("JPY", "JPY")])
def test_currency_is_upper_cased(given: str, expected: str) -> None:
    assert normalize_currency(given, "price_currency") == expected


@pytest.mark.parametrize("bad", ["XYZ", "US", "USDD", "BGN", "", "€", "dollars"])
def test_unknown_currency_is_invalid(bad: str) -> None:
    with pytest.raises(InvalidEvent, match="ISO 4217") as err:
        normalize_currency(bad, "price_currency")
    assert err.value.field == "price_currency"


@pytest.mark.parametrize("bad", [840, None, True, ["USD"]])
def test_currency_must_be_a_string(bad: object) -> None:
    with pytest.raises(InvalidEvent, match="must be a string"):
        normalize_currency(bad, "price_currency")


def test_iso_4217_table() -> None:
    assert len(ISO_4217_CODES) == 178
    assert {"USD", "EUR", "GBP", "JPY", "XCG", "SLE", "ZWG", "VES", "VED"} <= ISO_4217_CODES
    assert not {"BGN", "HRK", "SLL", "ZWL", "CUC", "ANG"} & ISO_4217_CODES  # withdrawn
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in ISO_4217_CODES)


@pytest.mark.parametrize(
    ("given", "expected"), [(1, 1), (3, 3), (3.0, 3), (MAX_QUANTITY, MAX_QUANTITY)]
)
def test_quantity(given: object, expected: int) -> None:
    assert normalize_quantity(given, "number_items") == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (0, "between"),
        (-1, "between"),
        (MAX_QUANTITY + 1, "between"),
        (2.5, "integer"),
        (True, "integer"),
        ("3", "integer"),
        (None, "integer"),
        (float("nan"), "integer"),
    ],
)
def test_bad_quantities(bad: object, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message) as err:
        normalize_quantity(bad, "number_items")
    assert err.value.field == "number_items"
