"""The common well-formed web conversions request, accepted in one pass (validation.py
decides everything else).

msgspec decodes the body straight into typed structs, with the syntax rules (types, field
names, patterns, bounds) checked in C; what is left in Python are the rules no type says
(the pixel's event tags, the calendar, the currencies, one identifier per object). The
types here are strictly narrower than validation.py's rules: whatever they refuse (a null
where a value may be null, a float amount, an IP address, an empty identifier, malformed
JSON, ...) is None here, and validation.py then gives the answer, errors and all. So a
request accepted here is one validation.py accepts, with the same dedup keys.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Final, Literal

import msgspec

from relay.sandbox import validation
from relay.sandbox.config import SandboxPixel
from relay.sandbox.currencies import CODES
from relay.sandbox.validation import MAX_CONVERSIONS, MAX_QUANTITY

# Integers well inside what both JSON parsers read exactly.
_MAX_INT: Final = 2**53

# Types only: msgspec's patterns would call Python's regular expressions per string, a
# few times dearer than the checks below, which cache what repeats (times, amounts).
Amount = str | Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT)]
Quantity = Annotated[int, msgspec.Meta(gt=0, le=MAX_QUANTITY)]
if TYPE_CHECKING:
    Currency = str
else:  # ISO 4217 codes, looked up by msgspec in C
    Currency = Literal[tuple(sorted(CODES))]


class _Identifier(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One identifier object; which one is set is checked in `fast_dedup_keys`. (`gc=False`:
    no struct here holds a cycle, so the collector need not walk them.)"""

    hashed_email: str | msgspec.UnsetType = msgspec.UNSET
    hashed_phone_number: str | msgspec.UnsetType = msgspec.UNSET
    twclid: str | msgspec.UnsetType = msgspec.UNSET


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
    tags = _event_tags(pixel)
    keys: list[str | None] = []
    append = keys.append
    hashes: list[str] = []  # checked together: one C call for all
    add_hash = hashes.append
    unset, valid_time, is_amount = msgspec.UNSET, _valid_time, _is_amount
    for conversion in document.conversions:
        tag = tags.get(conversion.event_id)
        if tag is None or not valid_time(conversion.conversion_time):
            return None
        identifiers = conversion.identifiers
        only = identifiers[0] if len(identifiers) == 1 else None
        if only is not None and only.hashed_phone_number is unset and only.twclid is unset:
            email = only.hashed_email  # the usual: one hashed email, inline
            if email is unset:
                return None
            add_hash(email)
        elif not _primaries_only(identifiers, add_hash):
            return None
        value = conversion.value
        if type(value) is str and not is_amount(value):
            return None
        if conversion.contents is not None and not _valid_contents(conversion.contents):
            return None
        conversion_id = conversion.conversion_id
        if conversion_id:
            append(f"{tag}\x1f{conversion_id}")
        else:
            append(None)
    return keys if _all_sha256(hashes) else None


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


def _primaries_only(identifiers: list[_Identifier], add_hash: Callable[[str], None]) -> bool:
    """At least one object, each holding exactly one identifier, a primary one (a hash,
    handed to `add_hash` for checking; a twclid, not blank)."""
    if not identifiers:
        return False
    for item in identifiers:
        given = [
            v
            for v in (item.hashed_email, item.hashed_phone_number, item.twclid)
            if v is not msgspec.UNSET
        ]
        if len(given) != 1:
            return False
        value = given[0]
        if item.twclid is msgspec.UNSET:
            add_hash(value)
        elif not value or value.isspace():
            return False
    return True


def _valid_contents(contents: list[_Content]) -> bool:
    return all(
        type(content.content_price) is not str or _is_amount(content.content_price)
        for content in contents
    )


@functools.lru_cache(maxsize=4096)
def _valid_time(text: str) -> bool:
    return validation.valid_time(text)


@functools.lru_cache(maxsize=4096)
def _is_amount(text: str) -> bool:
    return validation.is_amount(text)


def _event_tags(pixel: SandboxPixel) -> Mapping[str, str]:
    return _tags_of(pixel.id, frozenset(pixel.event_ids))


@functools.lru_cache(maxsize=256)
def _tags_of(pixel_id: str, event_ids: frozenset[str]) -> Mapping[str, str]:
    """event_id as sent -> the event tag, by validation.py's rule (`tw-<pixel>-` taken
    off once), for every event_id that names one of the pixel's tags."""
    prefix = f"tw-{pixel_id}-"
    tags = {}
    for event_id in (*event_ids, *(prefix + e for e in event_ids)):
        tag = event_id[len(prefix) :] if event_id.startswith(prefix) else event_id
        if tag in event_ids:
            tags[event_id] = tag
    return tags
