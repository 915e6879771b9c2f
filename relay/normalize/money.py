"""Amounts, currencies and item counts, checked before X sees them.

X rejects a whole request (up to 500 conversions) for one bad field, so anything X would
refuse is refused here, per event: negative or non-finite amounts, unknown currencies,
counts that are not positive integers.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from relay.errors import InvalidEvent

# ISO 4217 list one: the active alphabetic codes (funds, metals and X codes included) as of
# January 2026 (BGN withdrawn; XAD and XCG added).
_ISO_4217_TABLE: Final = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR
    IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
    MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD
    OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE
    SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI
    UYU UYW UZS VED VES VND VUV WST XAD XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD
    XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG
"""
ISO_4217_CODES: Final = frozenset(_ISO_4217_TABLE.split())
# Bounds that no real order reaches; they also keep "1e999999999" from rendering a
# billion digits.
MAX_INTEGER_DIGITS: Final = 15
MAX_FRACTION_DIGITS: Final = 20
MAX_QUANTITY: Final = 2**31 - 1  # X's integers are 32-bit


def normalize_amount(value: object, field: str) -> str:
    """A non-negative amount as a plain decimal string: "20.00" stays "20.00", 100.99 (a
    float) becomes "100.99", "1e3" becomes "1000"."""
    if isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    else:
        if isinstance(value, float):
            # repr is the shortest string that reads back as the same float: 100.99, not the
            # binary expansion 100.9899999999999948840923025272786617279052734375.
            text = repr(value)
        elif isinstance(value, str):
            text = value
        else:
            raise InvalidEvent(f"{field} must be a decimal number or string", field=field)
        if _is_plain_decimal(text):
            return text
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidEvent(f"{field} is not a decimal number", field=field) from None
    if not amount.is_finite():
        raise InvalidEvent(f"{field} must be a finite number", field=field)
    if amount.is_signed():
        if amount:
            raise InvalidEvent(f"{field} must not be negative", field=field)
        amount = amount.copy_abs()  # "-0" is 0
    exponent = amount.as_tuple().exponent
    if amount.adjusted() >= MAX_INTEGER_DIGITS or (
        isinstance(exponent, int) and exponent < -MAX_FRACTION_DIGITS
    ):
        raise InvalidEvent(
            f"{field} is out of range (at most {MAX_INTEGER_DIGITS} integer and"
            f" {MAX_FRACTION_DIGITS} fraction digits)",
            field=field,
        )
    return format(amount, "f")


def _is_plain_decimal(text: str) -> bool:
    """Already in the form the Decimal path renders ("20.00", "0.5", "7"): kept as given.

    Saves the Decimal round trip for what most producers send.
    """
    whole, dot, fraction = text.partition(".")
    return (
        text.isascii()
        and whole.isdigit()
        and len(whole) <= MAX_INTEGER_DIGITS
        and (whole[0] != "0" or len(whole) == 1)
        and (not dot or (fraction.isdigit() and len(fraction) <= MAX_FRACTION_DIGITS))
    )


def normalize_currency(value: object, field: str) -> str:
    """An ISO 4217 code, upper-cased."""
    if not isinstance(value, str):
        raise InvalidEvent(f"{field} must be a string", field=field)
    code = value.strip().upper()
    if code not in ISO_4217_CODES:
        raise InvalidEvent(f"{field} is not an ISO 4217 currency code", field=field)
    return code


def normalize_quantity(value: object, field: str) -> int:
    """A count of items: an integer > 0 (an integral float such as 3.0 is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent(f"{field} must be an integer", field=field)
    if not 0 < value <= MAX_QUANTITY:
        raise InvalidEvent(f"{field} must be between 1 and {MAX_QUANTITY}", field=field)
    return value


MICROS_PER_UNIT: Final = Decimal(1_000_000)


def to_micros(amount: str) -> int:
    """A normalized amount ("4.99") -> X's price_micro (4990000), in exact decimal arithmetic.

    Digits below a micro-unit are rounded half-even (the Decimal default).
    """
    return int((Decimal(amount) * MICROS_PER_UNIT).to_integral_value())
