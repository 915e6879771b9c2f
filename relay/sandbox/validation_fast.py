"""The common well-formed web conversions request, accepted in one pass (validation.py
decides everything else).

msgspec decodes the body straight into typed structs, with the syntax rules (types, field
names, bounds) checked in C; what is left in Python are the rules no type says (the
pixel's event tags, hashes, IP addresses, the calendar, amounts written as strings, one
identifier per object). Those are checked per request, not per conversion: the values of
one kind are joined and matched by one regular expression (or `bytes.fromhex`), so that a
500-conversion request costs a few C calls more, not a few thousand Python ones.

The types and checks here are strictly narrower than validation.py's rules: whatever they
refuse (a null where a value may be null, a float amount, an IP address with spaces or an
IPv4 tail, an empty identifier, malformed JSON, ...) is None here, and validation.py then
gives the answer, errors and all. So a request accepted here is one validation.py accepts,
with the same dedup keys.
"""

from __future__ import annotations

import functools
import operator
import re
import socket
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Annotated, Final, Literal

import msgspec

from relay.sandbox import validation
from relay.sandbox.config import SandboxPixel
from relay.sandbox.currencies import CODES
from relay.sandbox.validation import MAX_CONVERSIONS, MAX_QUANTITY

# Integers well inside what both JSON parsers read exactly.
_MAX_INT: Final = 2**53

# Types only: msgspec's patterns would call Python's regular expressions per string, dearer
# than the per-request checks below.
Amount = str | Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT)]
Quantity = Annotated[int, msgspec.Meta(gt=0, le=MAX_QUANTITY)]
if TYPE_CHECKING:
    Currency = str
else:  # ISO 4217 codes, looked up by msgspec in C
    Currency = Literal[tuple(sorted(CODES))]

_UNSET: Final = msgspec.UNSET

# Lists of values, each followed by ",": the count of "," is checked too, so that no value
# holds one (each value then matches alone). validation.py's patterns, tightened: a
# conversion time's clock within the day (the date is checked on the calendar apart).
_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_LIST: Final = re.compile(rf"(?:{_OCTET}(?:\.{_OCTET}){{3}},)*", re.ASCII)
_IPV6_CHARS_LIST: Final = re.compile(r"(?:[0-9A-Fa-f:]{2,39},)*", re.ASCII)
_AMOUNT_LIST: Final = re.compile(r"(?:\d+(?:\.\d+)?,)*", re.ASCII)
_TIME_LIST: Final = re.compile(
    r"(?:\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z,)*", re.ASCII
)
_TIME_CHARS: Final = len("2026-11-20T10:00:00.123Z")
_DAY: Final = operator.itemgetter(slice(0, len("2026-11-20")))


class _Identifier(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One identifier object; which ones are set is checked in `_identifiers_fit`.
    (`gc=False`: no struct here holds a cycle, so the collector need not walk them.)"""

    hashed_email: str | msgspec.UnsetType = _UNSET
    hashed_phone_number: str | msgspec.UnsetType = _UNSET
    twclid: str | msgspec.UnsetType = _UNSET
    ip_address: str | msgspec.UnsetType = _UNSET
    user_agent: str | msgspec.UnsetType = _UNSET


class _Content(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    content_id: str | None = None
    content_group_id: str | None = None
    content_name: str | None = None
    content_type: str | None = None
    content_price: Amount | None = None
    num_items: Quantity | None = None


class _Conversion(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    conversion_time: str
    event_id: str
    identifiers: Annotated[list[_Identifier], msgspec.Meta(min_length=1)]
    conversion_id: str | None = None
    value: Amount | None = None
    price_currency: Currency | None = None
    number_items: Quantity | None = None
    description: str | None = None
    contents: list[_Content] | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    conversions: Annotated[
        list[_Conversion], msgspec.Meta(min_length=1, max_length=MAX_CONVERSIONS)
    ]


_DECODER: Final = msgspec.json.Decoder(_Body)


def fast_dedup_keys(body: bytes, pixel: SandboxPixel) -> list[str | None] | None:
    """The dedup keys of a valid request in the common form; None when anything is unusual
    (validation.py decides then)."""
    try:
        document = _DECODER.decode(body)
    except msgspec.DecodeError:
        return None
    key_prefixes = _key_prefixes(pixel)
    keys: list[str | None] = []
    append = keys.append
    # Gathered for the whole request, checked together at the end.
    times: list[str] = []
    hashes: list[str] = []
    ipv4: list[str] = []
    ipv6: list[str] = []
    amounts: list[str] = []
    add_time, add_hash, add_amount = times.append, hashes.append, amounts.append
    add_ip = (ipv4.append, ipv6.append)
    fit = _identifiers_fit
    for conversion in document.conversions:
        key_prefix = key_prefixes.get(conversion.event_id)
        if key_prefix is None or not fit(conversion.identifiers, add_hash, add_ip):
            return None
        add_time(conversion.conversion_time)
        value = conversion.value
        if type(value) is str:
            add_amount(value)
        contents = conversion.contents
        if contents is not None:
            for content in contents:
                if type(content.content_price) is str:
                    add_amount(content.content_price)
        conversion_id = conversion.conversion_id
        if conversion_id:
            append(key_prefix + conversion_id)
        else:
            append(None)
    if (
        _all_times(set(times))  # distinct ones: a batch often repeats its times and amounts
        and _all_sha256(hashes)
        and _all_ip_addresses(ipv4, ipv6)
        and _all_listed(_AMOUNT_LIST, set(amounts))
    ):
        return keys
    return None


def _identifiers_fit(
    identifiers: list[_Identifier],
    add_hash: Callable[[str], None],
    add_ip: tuple[Callable[[str], None], Callable[[str], None]],
) -> bool:
    """Each object holds one primary identifier (a hash, handed to `add_hash` for checking;
    a twclid, not blank), or an IP address (handed to `add_ip[1]` with a colon, else to
    `add_ip[0]`) and/or a user agent (not blank); and there is a primary one, or both an IP
    address and a user agent."""
    primary = address = agent = False
    unset = _UNSET
    for item in identifiers:
        email, phone, twclid = item.hashed_email, item.hashed_phone_number, item.twclid
        ip_address, user_agent = item.ip_address, item.user_agent
        if ip_address is unset and user_agent is unset:
            if email is not unset:
                if phone is not unset or twclid is not unset or not email:
                    return False
                add_hash(email)
            elif phone is not unset:
                if twclid is not unset or not phone:
                    return False
                add_hash(phone)
            elif twclid is unset or not twclid or twclid.isspace():
                return False  # no identifier in the object, or a blank twclid
            primary = True
        elif email is not unset or phone is not unset or twclid is not unset:
            return False  # shares its object with an IP address or a user agent
        else:
            if ip_address is not unset:
                add_ip[":" in ip_address](ip_address)
                address = True
            if user_agent is not unset:
                if not user_agent or user_agent.isspace():
                    return False
                agent = True
    return primary or (address and agent)


def _all_listed(pattern: re.Pattern[str], values: Collection[str]) -> bool:
    """Each of `values` matches `pattern`'s item (`pattern` lists items followed by ",")."""
    if not values:
        return True
    joined = ",".join(values) + ","
    return joined.count(",") == len(values) and pattern.fullmatch(joined) is not None


def _all_times(times: Collection[str]) -> bool:
    """Each of `times` is `yyyy-MM-ddTHH:mm:ss.SSSZ` with a clock within the day, on a day
    of the calendar (each distinct day checked once, by validation.py's own rule)."""
    if not times:
        return True
    joined = ",".join(times) + ","
    if len(joined) != (_TIME_CHARS + 1) * len(times) or _TIME_LIST.fullmatch(joined) is None:
        return False
    return all(map(_valid_day, set(map(_DAY, times))))


@functools.lru_cache(maxsize=4096)
def _valid_day(day: str) -> bool:
    return validation.valid_time(f"{day}T00:00:00.000Z")


def _all_sha256(hashes: list[str]) -> bool:
    """Each of `hashes` is 64 hex digits: all of the same length, and together twice as many
    digits as bytes (`fromhex` skips whitespace, refuses anything else)."""
    if not hashes:
        return True
    if set(map(len, hashes)) != {64}:
        return False
    try:
        return len(bytes.fromhex("".join(hashes))) == 32 * len(hashes)
    except ValueError:
        return False


def _all_ip_addresses(ipv4: list[str], ipv6: list[str]) -> bool:
    """Each of `ipv4` (the addresses without a colon) is dotted decimal, each of `ipv6` (the
    others) is IPv6 as `_all_ipv6` takes it."""
    return _all_listed(_IPV4_LIST, ipv4) and _all_ipv6(ipv6)


def _all_ipv6(addresses: list[str]) -> bool:
    """Each of `addresses` is IPv6 in hex digits and colons only (no IPv4 tail, no zone)
    that the platform's `inet_pton` reads: a form Python's `ipaddress` reads too."""
    if not addresses:
        return True
    if not _all_listed(_IPV6_CHARS_LIST, addresses):
        return False
    try:
        for address in addresses:
            socket.inet_pton(socket.AF_INET6, address)
    except OSError:
        return False
    return True


def _key_prefixes(pixel: SandboxPixel) -> Mapping[str, str]:
    return _key_prefixes_of(pixel.id, frozenset(pixel.event_ids))


@functools.lru_cache(maxsize=256)
def _key_prefixes_of(pixel_id: str, event_ids: frozenset[str]) -> Mapping[str, str]:
    """event_id as sent -> its dedup keys' start (the pixel and the event tag, each followed
    by a unit separator), the event tag by validation.py's rule (`tw-<pixel>-` taken off
    once), for every event_id that names one of the pixel's tags."""
    prefix = f"tw-{pixel_id}-"
    key_prefixes = {}
    for event_id in (*event_ids, *(prefix + e for e in event_ids)):
        tag = event_id[len(prefix) :] if event_id.startswith(prefix) else event_id
        if tag in event_ids:
            key_prefixes[event_id] = f"{pixel_id}\x1f{tag}\x1f"
    return key_prefixes
