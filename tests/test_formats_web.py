from __future__ import annotations

import random
from typing import Any

import pytest

from relay.config import default_mapping_path, load_mapping
from relay.errors import DroppedEvent, InvalidEvent
from relay.formats.base import NormalizeContext, OutboundEvent
from relay.formats.web import WEB_ADAPTER, adapt_web
from relay.normalize.identifiers import sha256_hex

MAPPING = load_mapping(default_mapping_path())
CTX = NormalizeContext(mapping=MAPPING)
CTX_US = NormalizeContext(mapping=MAPPING, default_phone_region="US")

EMAIL_HASH = sha256_hex("test@example.com")
PHONE_VECTOR = "1fa6b8d986d9b9cd01bf36951815158bbde9f520c0567c835dfe34783d0a4231"
HEX64 = "a" * 64


def example() -> dict[str, Any]:
    """The canonical web event of event-formats.md."""
    return {
        "account_id": "18ce552mlaq",
        "pixel_id": "o8z6j",
        "event_id": "o87ne",
        "conversion_time": "2022-02-18T01:14:00.603Z",
        "conversion_id": "23294827",
        "email": "  Test@Example.com ",
        "phone": "+1 (123) 456-7890",
        "twclid": "23opevjt88psuo13lu8d020qkn",
        "ip_address": "1.0.0.0",
        "user_agent": "Mozilla/5.0 ...",
        "hashed_email": None,
        "hashed_phone_number": None,
        "value": "20.00",
        "price_currency": "usd",
        "number_items": 3,
        "description": "Pet supply purchases",
        "contents": [
            {
                "content_id": "1",
                "content_name": "Blankets",
                "content_type": "Pet supplies",
                "content_price": 100.99,
                "num_items": 1,
                "content_group_id": "123",
            }
        ],
        "consent": {"opt_out": False},
    }


def minimal(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "pixel_id": "o8z6j",
        "event_id": "o87ne",
        "conversion_time": "2022-02-18T01:14:00.603Z",
        "email": "test@example.com",
    }
    record.update(fields)
    return record


def payload(record: Any, ctx: NormalizeContext = CTX) -> dict[str, Any]:
    return adapt_web(record, ctx).payload


def invalid(record: Any, ctx: NormalizeContext = CTX) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as err:
        adapt_web(record, ctx)
    return err.value


def test_canonical_example() -> None:
    event = adapt_web(example(), CTX)
    assert event == OutboundEvent(
        kind="web",
        budget_key="18ce552mlaq",
        target="o8z6j",
        payload={
            "conversion_time": "2022-02-18T01:14:00.603Z",
            "event_id": "o87ne",
            "identifiers": [
                {"twclid": "23opevjt88psuo13lu8d020qkn"},
                {"hashed_email": EMAIL_HASH},
                {"hashed_phone_number": PHONE_VECTOR},
                {"ip_address": "1.0.0.0", "user_agent": "Mozilla/5.0 ..."},
            ],
            "conversion_id": "23294827",
            "value": "20.00",
            "price_currency": "USD",
            "number_items": 3,
            "description": "Pet supply purchases",
            "contents": [
                {
                    "content_id": "1",
                    "content_group_id": "123",
                    "content_name": "Blankets",
                    "content_type": "Pet supplies",
                    "content_price": "100.99",
                    "num_items": 1,
                }
            ],
        },
    )


def test_web_adapter_is_adapt_web() -> None:
    assert WEB_ADAPTER is adapt_web


def test_absent_optionals_are_omitted() -> None:
    assert set(payload(minimal())) == {
        "conversion_time",
        "event_id",
        "identifiers",
        "conversion_id",
    }
    nulls = dict.fromkeys(["value", "price_currency", "number_items", "description", "contents"])
    assert set(payload(minimal(**nulls))) == set(payload(minimal()))


def test_no_raw_pii_in_the_payload() -> None:
    text = repr(adapt_web(example(), CTX))
    assert "example.com" not in text.lower()
    assert "1234567890" not in text
    assert "456-7890" not in text


# --- not an object -----------------------------------------------------------------------


@pytest.mark.parametrize("record", [[], [example()], "{}", 1, 1.5, True, None])
def test_record_must_be_an_object(record: Any) -> None:
    err = invalid(record)
    assert err.message == "event must be a JSON object"
    assert err.field is None
    assert err.error_class == "invalid_event"


# --- privacy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"consent": {"opt_out": True}},
        {"limit_ad_tracking": True},
        {"consent": {"opt_out": "true"}},  # anything but absent/null/false fails closed
        {"consent": {"opt_out": 1}},
        {"limit_ad_tracking": "yes"},
        {"consent": "garbage", "limit_ad_tracking": True},
    ],
)
def test_opted_out_is_dropped(fields: dict[str, Any]) -> None:
    with pytest.raises(DroppedEvent) as err:
        adapt_web(minimal(**fields), CTX)
    assert err.value.reason == "opted_out"


def test_opt_out_is_checked_before_anything_else() -> None:
    garbage = {"pixel_id": 5, "email": ["x"], "conversion_time": "never"}
    with pytest.raises(DroppedEvent):
        adapt_web({**garbage, "consent": {"opt_out": True}}, CTX)
    with pytest.raises(DroppedEvent):
        adapt_web({**garbage, "limit_ad_tracking": True}, CTX)


@pytest.mark.parametrize(
    "fields",
    [
        {"consent": {"opt_out": False}},
        {"consent": {"opt_out": None}},
        {"consent": {}},
        {"consent": None},
        {"limit_ad_tracking": False},
    ],
)
def test_not_opted_out(fields: dict[str, Any]) -> None:
    assert payload(minimal(**fields))["event_id"] == "o87ne"


def test_consent_must_be_an_object() -> None:
    err = invalid(minimal(consent="granted"))
    assert err.field == "consent"


# --- pixel, account, event ---------------------------------------------------------------


def test_account_from_the_mapping() -> None:
    event = adapt_web(minimal(), CTX)
    assert (event.budget_key, event.target) == ("18ce552mlaq", "o8z6j")


def test_unknown_pixel() -> None:
    err = invalid(minimal(pixel_id="zz9zz"))
    assert err.error_class == "unknown_pixel"
    assert err.field == "pixel_id"


def test_unknown_pixel_with_an_account_id() -> None:
    event = adapt_web(minimal(pixel_id="zz9zz", account_id="18cexyz", event_id="ab12c"), CTX)
    assert (event.budget_key, event.target) == ("18cexyz", "zz9zz")


def test_account_must_own_the_pixel() -> None:
    err = invalid(minimal(account_id="18ce55ab3cd"))
    assert err.field == "account_id"
    assert err.error_class == "invalid_event"


def test_tw_event_id_form_is_kept() -> None:
    assert payload(minimal(event_id="tw-o8z6j-o87nf"))["event_id"] == "tw-o8z6j-o87nf"


@pytest.mark.parametrize(
    "event_id",
    [
        "p9x01",  # an event of pixel p1a2b
        "zzzzz",  # no event of any pixel
        "tw-p1a2b-p9x01",  # the tw- form of another pixel
        "tw-o8z6j-zzzzz",
        "tw-o8z6j-",
        "o87ne/../x",
        "o87 ne",
    ],
)
def test_event_id_not_of_the_pixel(event_id: str) -> None:
    err = invalid(minimal(event_id=event_id))
    assert err.field == "event_id"
    assert err.error_class == "invalid_event"


@pytest.mark.parametrize("pixel_id", ["o8z6j/../x", "o8z6j?a=b", "", "   ", "x" * 65])
def test_pixel_id_must_be_base36(pixel_id: str) -> None:
    assert invalid(minimal(pixel_id=pixel_id)).field == "pixel_id"


@pytest.mark.parametrize("field", ["pixel_id", "event_id", "conversion_time"])
def test_required_fields(field: str) -> None:
    record = minimal()
    del record[field]
    err = invalid(record)
    assert err.field == field
    assert "required" in err.message


# --- identifiers -------------------------------------------------------------------------


def test_email_hashed_trimmed_lowercased() -> None:
    ids = payload(minimal(email="  Test-Email@TEST.com "))["identifiers"]
    assert ids == [
        {"hashed_email": "e586883b2b4faf78d48300a79e0e15138d664cdf796ffb86e533170a9893eda8"}
    ]


def test_phone_hashed_as_e164_with_plus() -> None:
    ids = payload(minimal(email=None, phone="+1 (123) 456-7890"))["identifiers"]
    assert ids == [{"hashed_phone_number": PHONE_VECTOR}]


def test_national_phone_uses_the_default_region() -> None:
    assert payload(minimal(phone="(123) 456-7890"), CTX_US)["identifiers"][1] == {
        "hashed_phone_number": PHONE_VECTOR
    }
    err = invalid(minimal(phone="(123) 456-7890"))
    assert err.field == "phone"
    assert "default phone region" in err.message


def test_impossible_phone() -> None:
    assert invalid(minimal(phone="+1 202 555 01234")).field == "phone"


def test_prehashed_identifiers_pass_lowercased() -> None:
    record = minimal(email=None, hashed_email=HEX64.upper(), hashed_phone_number=" " + "B" * 64)
    assert payload(record)["identifiers"] == [
        {"hashed_email": HEX64},
        {"hashed_phone_number": "b" * 64},
    ]


def test_raw_value_that_is_a_hash_is_taken_as_hashed() -> None:
    ids = payload(minimal(email=HEX64.upper(), phone="C" * 64))["identifiers"]
    assert ids == [{"hashed_email": HEX64}, {"hashed_phone_number": "c" * 64}]


def test_raw_identifier_wins_over_hashed() -> None:
    record = minimal(hashed_email="not a hash", phone="+11234567890", hashed_phone_number=HEX64)
    assert payload(record)["identifiers"] == [
        {"hashed_email": EMAIL_HASH},
        {"hashed_phone_number": PHONE_VECTOR},
    ]


@pytest.mark.parametrize("field", ["hashed_email", "hashed_phone_number"])
def test_bad_hash_is_invalid_without_echo(field: str) -> None:
    err = invalid(minimal(email=None, **{field: "bob@example.com"}))
    assert err.field == field
    assert "is not a valid SHA-256 hash" in err.message
    assert "bob" not in err.message


def test_empty_strings_are_absent() -> None:
    record = minimal(email="", phone="   ", twclid="", hashed_email=HEX64, ip_address="")
    assert payload(record)["identifiers"] == [{"hashed_email": HEX64}]


def test_ip_and_user_agent_share_one_object() -> None:
    record = minimal(email=None, twclid=" tw1 ", ip_address=" 1.0.0.0 ", user_agent=" UA ")
    assert payload(record)["identifiers"] == [
        {"twclid": "tw1"},
        {"ip_address": "1.0.0.0", "user_agent": "UA"},
    ]


def test_ip_and_user_agent_alone_are_valid() -> None:
    record = minimal(email=None, ip_address=" 192.0.2.7 ", user_agent=" Mozilla/5.0 ")
    assert payload(record)["identifiers"] == [
        {"ip_address": "192.0.2.7", "user_agent": "Mozilla/5.0"}
    ]


def test_ip_alone_next_to_email() -> None:
    assert payload(minimal(ip_address="1.0.0.0"))["identifiers"] == [
        {"hashed_email": EMAIL_HASH},
        {"ip_address": "1.0.0.0"},
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"email": None},
        {"email": None, "ip_address": "1.0.0.0"},
        {"email": None, "user_agent": "UA"},
        {"email": " ", "phone": "", "twclid": "", "hashed_email": ""},
    ],
)
def test_no_usable_identifier(fields: dict[str, Any]) -> None:
    err = invalid(minimal(**fields))
    assert err.field == "identifiers"
    assert "no usable identifier" in err.message


@pytest.mark.parametrize(
    ("field", "secret"),
    [
        ("phone", "+1 555 ALICE-SECRET 0"),
        ("phone", "ALICE-SECRET"),
        ("phone", "+" + "7" * 80),
        ("hashed_email", "alice.secret@example.com"),
        ("hashed_phone_number", "+1 555 ALICE-SECRET"),
    ],
)
def test_no_raw_pii_in_error_messages(field: str, secret: str) -> None:
    err = invalid(minimal(email=None, **{field: secret}), CTX_US)
    assert err.field == field
    for needle in ("ALICE", "alice", "SECRET", "7777777"):
        assert needle not in err.message
        assert needle not in str(err)


# --- time, money, details ----------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "2022-02-18T01:14:00.603Z",
        "2022-02-18T03:14:00.603+02:00",
        "2022-02-18T01:14:00.603123456Z",
        1645146840603,
        "1645146840603",
    ],
)
def test_conversion_time_forms(given: object) -> None:
    assert payload(minimal(conversion_time=given))["conversion_time"] == "2022-02-18T01:14:00.603Z"


def test_zoneless_conversion_time_is_invalid() -> None:
    assert invalid(minimal(conversion_time="2022-02-18T01:14:00.603")).field == "conversion_time"


@pytest.mark.parametrize(
    ("given", "expected"), [("20.00", "20.00"), (100.99, "100.99"), (20, "20"), ("1e2", "100")]
)
def test_value_forms(given: object, expected: str) -> None:
    assert payload(minimal(value=given))["value"] == expected


@pytest.mark.parametrize("bad", ["-1", "NaN", True, "twenty"])
def test_bad_value(bad: object) -> None:
    assert invalid(minimal(value=bad)).field == "value"


def test_currency_upper_cased_and_alias() -> None:
    assert payload(minimal(price_currency="eur"))["price_currency"] == "EUR"
    assert payload(minimal(currency="gbp"))["price_currency"] == "GBP"
    assert payload(minimal(price_currency="eur", currency="gbp"))["price_currency"] == "EUR"
    assert payload(minimal(price_currency="", currency="gbp"))["price_currency"] == "GBP"


@pytest.mark.parametrize(("field", "code"), [("price_currency", "XYZ"), ("currency", "usdollar")])
def test_unknown_currency(field: str, code: str) -> None:
    assert invalid(minimal(**{field: code})).field == field


def test_number_items() -> None:
    assert payload(minimal(number_items=2))["number_items"] == 2
    for bad in (0, -3, 1.5, True):
        assert invalid(minimal(number_items=bad)).field == "number_items"


def test_description_kept_as_given() -> None:
    assert payload(minimal(description=" Pets "))["description"] == " Pets "


def test_contents_unknown_keys_dropped_and_prices_as_decimal_strings() -> None:
    contents = [
        {"content_id": 7, "content_price": "9.90", "sku": "x", "num_items": 2.0},
        {"content_name": "Bowl", "colour": "red", "content_price": 3},
        {"unknown": 1},
        {"content_id": ""},
    ]
    assert payload(minimal(contents=contents))["contents"] == [
        {"content_id": "7", "content_price": "9.90", "num_items": 2},
        {"content_name": "Bowl", "content_price": "3"},
    ]
    assert "contents" not in payload(minimal(contents=[]))
    assert "contents" not in payload(minimal(contents=[{"other": 1}]))


@pytest.mark.parametrize(
    ("contents", "field"),
    [
        ({"content_id": "1"}, "contents"),
        ("1,2", "contents"),
        ([1], "contents[0]"),
        ([{}, ["content_id"]], "contents[1]"),
        ([{"content_price": "-1"}], "contents[0].content_price"),
        ([{"content_price": [1]}], "contents[0].content_price"),
        ([{"num_items": 0}], "contents[0].num_items"),
        ([{"content_name": 5}], "contents[0].content_name"),
        ([{"content_type": {}}], "contents[0].content_type"),
        ([{"content_id": 1.5}], "contents[0].content_id"),
        ([{"content_group_id": True}], "contents[0].content_group_id"),
    ],
)
def test_bad_contents(contents: Any, field: str) -> None:
    assert invalid(minimal(contents=contents)).field == field


# --- conversion ids ----------------------------------------------------------------------


def test_given_conversion_id_is_kept() -> None:
    assert payload(minimal(conversion_id=" abc-1 "))["conversion_id"] == "abc-1"
    assert payload(minimal(conversion_id=23294827))["conversion_id"] == "23294827"


def test_derived_conversion_id_is_stable() -> None:
    first = payload(minimal(value="20.00", price_currency="usd"))["conversion_id"]
    assert len(first) == 32
    assert int(first, 16) >= 0
    # A re-produced copy with other spellings of the same content gets the same id ...
    again = minimal(
        email="  TEST@example.COM",
        conversion_time="2022-02-18T02:14:00.603+01:00",
        value="20.00",
        currency="USD",
        ip_address="2.2.2.2",
        description="not part of the identity",
    )
    assert payload(again)["conversion_id"] == first
    # ... and another conversion does not.
    for changed in (
        {"value": "21.00"},
        {"price_currency": "eur"},
        {"conversion_time": "2022-02-18T01:14:00.604Z"},
        {"event_id": "o87nf"},
        {"email": "other@example.com"},
        {"twclid": "tw1"},
        {"phone": "+11234567890"},
    ):
        record = {**minimal(value="20.00", price_currency="usd"), **changed}
        assert payload(record)["conversion_id"] != first


def test_derived_id_same_for_both_event_id_forms() -> None:
    short = payload(minimal())["conversion_id"]
    assert payload(minimal(event_id="tw-o8z6j-o87ne"))["conversion_id"] == short


# --- wrong types and garbage -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pixel_id", 123),
        ("pixel_id", ["o8z6j"]),
        ("event_id", 5),
        ("account_id", 18),
        ("email", 5),
        ("email", {"address": "a@b.c"}),
        ("phone", 12025550123),
        ("hashed_email", 1),
        ("hashed_phone_number", []),
        ("twclid", {}),
        ("ip_address", 1),
        ("user_agent", ["UA"]),
        ("conversion_time", []),
        ("conversion_time", True),
        ("value", {}),
        ("value", False),
        ("price_currency", 840),
        ("currency", ["USD"]),
        ("number_items", "3"),
        ("description", 5),
        ("contents", {}),
        ("conversion_id", 1.5),
        ("conversion_id", True),
        ("consent", "yes"),
    ],
)
def test_wrong_types(field: str, value: Any) -> None:
    record = minimal(**{field: value})
    if field.startswith("hashed_"):
        record["email"] = None
    assert invalid(record).field == field


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


HUGE = "9" * 200_000

GARBAGE: list[Any] = [
    [],
    [1, 2, 3],
    "",
    "o8z6j",
    HUGE,
    0,
    -1,
    1e308,
    True,
    None,
    nested(300),
    {},
    {"a": nested(300)},
    {"pixel_id": nested(50)},
    {"pixel_id": HUGE},
    minimal(pixel_id=None),
    minimal(event_id=HUGE),
    minimal(event_id="tw-" + HUGE),
    minimal(conversion_time=HUGE),
    minimal(conversion_time=nested(50)),
    minimal(conversion_time=-(10**18)),
    minimal(conversion_time=1e300),
    minimal(value=HUGE),
    minimal(value="1e" + HUGE),
    minimal(value=nested(50)),
    minimal(price_currency=HUGE),
    minimal(number_items=10**18),
    minimal(email=None, phone=HUGE),
    minimal(email=None, phone="+" + HUGE),
    minimal(email=None, hashed_email=HUGE),
    minimal(email=nested(50)),
    minimal(contents=[nested(51)]),
    minimal(contents=[{"content_price": HUGE}]),
    minimal(contents=nested(50)),
    minimal(consent=nested(51)),
    minimal(account_id=HUGE),
]


@pytest.mark.parametrize("record", GARBAGE, ids=lambda record: type(record).__name__)
def test_garbage_is_invalid_event(record: Any) -> None:
    invalid(record, CTX_US)


JSON_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    7,
    2**63 - 1,
    -(2**63),
    1.5,
    -0.0,
    1e308,
    "",
    " ",
    "x",
    "0",
    "-1",
    "1e999",
    "NaN",
    "usd",
    "+1",
    "tw-o8z6j-",
    "2022-02-18T01:14:00.603Z",
    "2022-02-18T01:14:00",
    HEX64,
    "a@b.c",
    "+1 (123) 456-7890",
    "\u0000",
    "\u202e",
    "\U0001f600",
    [],
    {},
    [None],
    {"opt_out": None},
    {"content_id": 1},
    nested(20),
]
FIELDS = [*minimal(), *example(), "currency", "limit_ad_tracking", "unknown_extra"]


def test_fuzzed_records_raise_only_relay_errors() -> None:
    rng = random.Random(20260218)
    for _ in range(3_000):
        record = example() if rng.random() < 0.5 else minimal()
        for _ in range(rng.randint(1, 4)):
            record[rng.choice(FIELDS)] = rng.choice(JSON_VALUES)
        if rng.random() < 0.2:
            del record[rng.choice(list(record))]
        try:
            event = adapt_web(record, rng.choice([CTX, CTX_US]))
        except DroppedEvent as dropped:
            assert dropped.reason == "opted_out"
        except InvalidEvent as err:
            for pii in ("email", "phone", "ip_address", "user_agent", "twclid"):
                raw = record.get(pii)
                if isinstance(raw, str) and len(raw.strip()) > 3:
                    assert raw.strip() not in err.message, (pii, err.message)
        else:
            assert isinstance(event.payload["identifiers"], list)
            assert event.payload["conversion_time"].endswith("Z")
