"""The `+` fast path of phone normalization gives phonenumbers' answer, on random numbers of
every region phonenumbers knows (their example numbers, changed and written many ways)."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from relay.errors import InvalidEvent
from relay.normalize import identifiers
from relay.normalize.identifiers import hash_phone, parsed_e164, sha256_hex

TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.UAN,
)


def written(rng: random.Random, code: int, national: str) -> str:
    """`+code national` in one of the plain shapes people type, sometimes not plain."""
    style = rng.randrange(6)
    if style == 0:
        return f"+{code}{national}"
    groups, rest = [], national
    while rest:
        cut = rng.randint(1, 4)
        groups.append(rest[:cut])
        rest = rest[cut:]
    separator = rng.choice((" ", "-", ".", " ", "  ", " - ", "/"))
    head = f"+{code}" if style < 5 else f"+{code} ({groups.pop(0)})" if groups else f"+{code}"
    return separator.join([head, *groups]) if groups else head


def nationals(rng: random.Random, example: str) -> list[str]:
    """The example national number, with its last digits drawn again, shorter, longer, with a
    leading 0 or the region's trunk prefix, and digits at random."""
    out = [example]
    for _ in range(12):
        keep = rng.randint(max(len(example) - 6, 0), len(example))
        tail = "".join(rng.choice("0123456789") for _ in range(len(example) - keep))
        out.append(example[:keep] + tail)
    out.append(example[:-1])
    out.append(example + str(rng.randrange(10)))
    out.append("0" + example)
    out.append("".join(rng.choice("0123456789") for _ in range(rng.randint(2, 18))))
    return [n for n in out if n]


def cases(seed: int) -> list[str]:
    rng = random.Random(seed)
    phones: list[str] = []
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    for region in regions:
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None or example.country_code is None:
                continue
            for national in nationals(rng, str(example.national_number)):
                phones.append(written(rng, example.country_code, national))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            for national in nationals(rng, str(example.national_number)):
                phones.append(written(rng, code, national))
    for _ in range(3000):  # digits at random after the plus: unknown codes, any length
        phones.append("+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20))))
    return phones


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fast_path_answers_as_phonenumbers_on_random_numbers_of_every_region(
    seed: int,
) -> None:
    phones = cases(seed)
    fast = 0
    for phone in phones:
        answer = identifiers._plain_international_e164(phone)
        if answer is not None:
            fast += 1
            assert answer == parsed_e164(phone, None), phone
    # Most plain numbers take it: the comparison covers what the relay runs.
    possible = sum(1 for phone in phones if parsed_e164(phone, None) is not None)
    assert len(phones) > 15_000 and fast > possible * 0.4, (len(phones), possible, fast)


def test_hash_phone_gives_the_same_hash_either_way() -> None:
    rng = random.Random(3)
    for phone in rng.sample(cases(3), 3000):
        expected = parsed_e164(phone, None)
        if expected is None:
            with pytest.raises(InvalidEvent):
                hash_phone(phone, None)
        else:
            assert hash_phone(phone, None) == sha256_hex(expected), phone


def test_what_it_cannot_tell_is_left_to_phonenumbers() -> None:
    assert identifiers._plain_international_e164("+44 7400 121416") == "+447400121416"
    for phone in (
        "+39 06 1234 5678",  # Italian leading zero: kept by E.164
        "+44 07400 121416",  # a written trunk prefix: phonenumbers strips it
        "+800 1234 5678",  # a non-geographic code
        "+44 (0) 7400 121416",  # not a plain shape
        "+44 7400 121416 ext. 12",
        "+٤٤٧٤٠٠١٢١٤١٦",  # digits of another script
    ):
        assert identifiers._plain_international_e164(phone) is None, phone
