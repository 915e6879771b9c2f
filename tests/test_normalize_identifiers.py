from __future__ import annotations

from collections.abc import Iterator

import phonenumbers
import pytest

from relay.errors import InvalidEvent
from relay.normalize import identifiers
from relay.normalize.identifiers import (
    check_sha256,
    hash_email,
    hash_phone,
    is_sha256_hex,
    sha256_hex,
    trimmed,
    web_identifiers,
)

# X's published vectors (x-ads-api.md). The seed's `test@x.com -> d360d510...` pair is wrong:
# d360d510... is the hash of test@twitter.com.
EMAIL_VECTOR = "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"
X_COM_VECTOR = "5806dc6b2f04fb728708a8f7b81c14edcd4fba36f77914cf0c9368d9a3a25f76"
PHONE_VECTOR = "1fa6b8d986d9b9cd01bf36951815158bbde9f520c0567c835dfe34783d0a4231"


@pytest.fixture(autouse=True)
def _empty_phone_cache() -> Iterator[None]:
    identifiers._hash_e164.cache_clear()
    yield
    identifiers._hash_e164.cache_clear()


def test_email_vectors() -> None:
    assert hash_email("test-email@test.com") == EMAIL_VECTOR
    assert hash_email("test@x.com") == X_COM_VECTOR
    assert (hash_email("test@twitter.com") or "").startswith("d360d510")


def test_email_is_trimmed_and_lowercased() -> None:
    assert hash_email("  Test-Email@TEST.com\t\n") == EMAIL_VECTOR


def test_email_keeps_dots_and_plus_tags() -> None:
    # No Gmail dot removal: that is Google's rule, not X's.
    assert hash_email("first.last+tag@gmail.com") == sha256_hex("first.last+tag@gmail.com")


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_blank_email_is_absent(blank: str) -> None:
    assert hash_email(blank) is None


def test_prehashed_email_passes_lowercased() -> None:
    assert hash_email(f"  {EMAIL_VECTOR.upper()} ") == EMAIL_VECTOR


def test_phone_vector() -> None:
    assert hash_phone("+11234567890", None) == PHONE_VECTOR


def test_formatted_phone_hashes_to_the_vector() -> None:
    # 123 is no US area code: phonenumbers calls the number possible but not valid, and X's
    # own vector is this number, so possibility (not validity) is the check.
    number = phonenumbers.parse("+1 (123) 456-7890", None)
    assert phonenumbers.is_possible_number(number)
    assert not phonenumbers.is_valid_number(number)
    assert hash_phone(" +1 (123) 456-7890 ", None) == PHONE_VECTOR


def test_national_phone_uses_the_default_region() -> None:
    assert hash_phone("(123) 456-7890", "US") == PHONE_VECTOR
    assert hash_phone("123-456-7890", "us") == PHONE_VECTOR
    # A `+` number ignores the default region.
    assert hash_phone("+1 123 456 7890", "DE") == PHONE_VECTOR


def test_e164_keeps_the_plus_and_leading_zeros() -> None:
    assert hash_phone("+39 06 1234 5678", None) == sha256_hex("+390612345678")
    assert hash_phone("030 1234567", "DE") == sha256_hex("+49301234567")


def test_phone_without_plus_needs_a_region() -> None:
    with pytest.raises(InvalidEvent) as err:
        hash_phone("202 555 0123", None)
    assert err.value.field == "phone"
    assert "default phone region" in err.value.message


def test_unknown_default_region_is_reported() -> None:
    with pytest.raises(InvalidEvent, match="not a known region") as err:
        hash_phone("202 555 0123", "XX")
    assert err.value.field == "phone"


@pytest.mark.parametrize(
    "phone",
    [
        "+1 202 555 01234",  # too long for +1
        "+1 12",  # too short
        "+999 1234567",  # no such country code
        "+abc",
        "+",
        "+" + "1" * 70,  # longer than any phone
    ],
)
def test_impossible_phone_is_invalid(phone: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        hash_phone(phone, None)
    assert err.value.field == "phone"


def test_phone_errors_never_contain_the_number() -> None:
    for phone, region in [("+1 555 ALICE-SECRET 99", None), ("ALICE-SECRET", None)]:
        with pytest.raises(InvalidEvent) as err:
            hash_phone(phone, region)
        assert "ALICE" not in str(err.value)
        assert "SECRET" not in err.value.message


def test_blank_phone_is_absent() -> None:
    assert hash_phone("  ", None) is None


def test_prehashed_phone_passes_lowercased() -> None:
    assert hash_phone(PHONE_VECTOR.upper(), None) == PHONE_VECTOR


def test_each_phone_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None) -> phonenumbers.PhoneNumber:
        calls.append(number)
        return real_parse(number, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    for _ in range(3):
        assert hash_phone("+44 (0)20 7946 0958", None) is not None
    for _ in range(3):  # +1 and ten digits never reach the parser
        assert hash_phone("+1 (123) 456-7890", None) == PHONE_VECTOR
    for _ in range(3):  # nor does a plain + number it would return as written
        assert hash_phone("+44 20 7946 0958", None) == hash_phone("+44 (0)20 7946 0958", None)
    for _ in range(2):
        with pytest.raises(InvalidEvent):
            hash_phone("+1 12", None)
    assert calls == ["+44 (0)20 7946 0958", "+1 12"]


def test_phone_cache_is_bounded() -> None:
    assert identifiers._hash_e164.cache_parameters()["maxsize"] == identifiers.PHONE_CACHE_SIZE


def test_sha256_shape() -> None:
    assert is_sha256_hex(EMAIL_VECTOR)
    assert is_sha256_hex(EMAIL_VECTOR.upper())
    assert not is_sha256_hex(EMAIL_VECTOR[:-1])
    assert not is_sha256_hex(EMAIL_VECTOR + "0")
    assert not is_sha256_hex(EMAIL_VECTOR[:-1] + "g")
    assert not is_sha256_hex(EMAIL_VECTOR[:-1] + "\n")


def test_check_sha256_lowercases() -> None:
    assert check_sha256(f" {EMAIL_VECTOR.upper()} ", "hashed_email") == EMAIL_VECTOR
    assert check_sha256("  ", "hashed_email") is None


@pytest.mark.parametrize("bad", ["abc", "bob@example.com", EMAIL_VECTOR[:63], "z" * 64])
def test_check_sha256_rejects_without_echoing(bad: str) -> None:
    with pytest.raises(InvalidEvent, match="is not a valid SHA-256 hash") as err:
        check_sha256(bad, "hashed_email")
    assert err.value.field == "hashed_email"
    assert bad not in err.value.message


def test_trimmed() -> None:
    assert trimmed("  1.0.0.0 ") == "1.0.0.0"
    assert trimmed(" \t") is None


def _ids(**given: str | None) -> list[dict[str, str]]:
    fields: dict[str, str | None] = dict.fromkeys(
        ("twclid", "hashed_email", "hashed_phone_number", "ip_address", "user_agent")
    )
    fields.update(given)
    return web_identifiers(**fields)


def test_each_identifier_in_its_own_object_ip_and_ua_shared() -> None:
    assert _ids(
        twclid="tw",
        hashed_email="e",
        hashed_phone_number="p",
        ip_address="1.0.0.0",
        user_agent="UA",
    ) == [
        {"twclid": "tw"},
        {"hashed_email": "e"},
        {"hashed_phone_number": "p"},
        {"ip_address": "1.0.0.0", "user_agent": "UA"},
    ]


def test_ip_or_user_agent_alone_next_to_another_identifier() -> None:
    assert _ids(hashed_email="e", ip_address="1.0.0.0") == [
        {"hashed_email": "e"},
        {"ip_address": "1.0.0.0"},
    ]
    assert _ids(twclid="tw", user_agent="UA") == [{"twclid": "tw"}, {"user_agent": "UA"}]


def test_ip_and_user_agent_together_are_enough() -> None:
    # Seed 004: each needs "another identifier (twclid, email, phone or user agent / IP)".
    assert _ids(ip_address="1.0.0.0", user_agent="UA") == [
        {"ip_address": "1.0.0.0", "user_agent": "UA"}
    ]


@pytest.mark.parametrize("given", [{}, {"ip_address": "1.0.0.0"}, {"user_agent": "UA"}])
def test_no_usable_identifier(given: dict[str, str]) -> None:
    with pytest.raises(InvalidEvent, match="no usable identifier") as err:
        _ids(**given)
    assert err.value.field == "identifiers"


def test_north_american_fast_path_agrees_with_phonenumbers() -> None:
    import random

    import phonenumbers

    from relay.normalize.identifiers import _nanp_e164

    rng = random.Random(5)
    shapes = [
        "+1{a}{b}{c}",
        "+1 ({a}) {b}-{c}",
        "+1-{a}-{b}-{c}",
        "+1.{a}.{b}.{c}",
        "+1 {a} {b} {c}",
        "+1({a}){b}{c}",
        "+1 1{a}{b}{c}",
        "+1 {a} {b}",
    ]
    for _ in range(5000):
        a, b, c = (
            f"{rng.randrange(1000):03d}",
            f"{rng.randrange(1000):03d}",
            f"{rng.randrange(10000):04d}",
        )
        phone = rng.choice(shapes).format(a=a, b=b, c=c)
        fast = _nanp_e164(phone)
        if fast is None:
            continue
        number = phonenumbers.parse(phone, None)
        assert phonenumbers.is_possible_number(number), phone
        assert fast == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert _nanp_e164("+1 (212) 555-0100") == "+12125550100"
    assert _nanp_e164("+44 20 7946 0958") is None
    assert _nanp_e164("+1 212 555 010") is None
