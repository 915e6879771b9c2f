from __future__ import annotations

import base64
import hashlib

import pytest

from relay.errors import DroppedEvent, InvalidEvent
from relay.normalize.device_ids import (
    check_hashed_device_id,
    device_id_params,
    extra_device_id,
    hmac_device_id,
    normalize_device_id,
    redact_device_ids,
)
from tests.app_formats import ADID, IDFA, KEY, ZERO, independent_hmac

# Computed once with Python's hmac module over the ids as written, key KEY.
IDFA_HMAC = "YWOZvNxUodE0wCLNUXH7VFgq+BR/HHr/qzLOYCk/EwA="
ADID_HMAC = "175x5SXhl0tH0jqETjl1G6WuYoKkrYSr6ogt10mNNOs="


@pytest.mark.parametrize(("device_id", "expected"), [(IDFA, IDFA_HMAC), (ADID, ADID_HMAC)])
def test_hmac_equals_an_independent_computation(device_id: str, expected: str) -> None:
    assert hmac_device_id(device_id, KEY) == expected == independent_hmac(device_id)
    assert len(base64.b64decode(expected)) == 32


def test_the_key_matters() -> None:
    assert hmac_device_id(IDFA, KEY) != hmac_device_id(IDFA, b"another key")


@pytest.mark.parametrize(
    ("case", "expected"),
    [("as_received", IDFA), ("lower", IDFA.lower()), ("upper", IDFA.upper())],
)
def test_case_normalization_before_hashing(case: str, expected: str) -> None:
    assert normalize_device_id(f"  {IDFA}\t", case, "idfa") == expected  # type: ignore[arg-type]
    params = device_id_params(IDFA, key=KEY, case=case, extra=False, field="idfa")  # type: ignore[arg-type]
    assert params == {"hashed_device_id": independent_hmac(expected)}


def test_as_received_keeps_a_lowercase_adid() -> None:
    params = device_id_params(f" {ADID} ", key=KEY, case="as_received", extra=False, field="x")
    assert params["hashed_device_id"] == ADID_HMAC


@pytest.mark.parametrize("zero", [ZERO, ZERO.upper(), f" {ZERO} "])
def test_all_zero_id_is_dropped_never_hashed(zero: str) -> None:
    with pytest.raises(DroppedEvent) as err:
        device_id_params(zero, key=KEY, case="as_received", extra=True, field="idfa")
    assert err.value.reason == "zero_device_id"


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-device-id",
        IDFA.replace("-", ""),
        IDFA + "0",
        IDFA[:-1] + "G",
        "{" + IDFA + "}",
        "DD99CFF7-1C9B-4D0E-9F4B-6A8D5E0C1B2A-SECRET",
    ],
)
def test_ids_of_another_shape_are_invalid_without_echoing_them(bad: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        normalize_device_id(bad, "as_received", "idfa")
    assert err.value.field == "idfa"
    assert "SECRET" not in err.value.message and "DD99" not in err.value.message


def test_extra_device_ids_are_sha256_of_sha1() -> None:
    sha1 = hashlib.sha1(IDFA.encode()).hexdigest()
    assert extra_device_id(IDFA) == hashlib.sha256(sha1.encode()).hexdigest()
    params = device_id_params(IDFA, key=KEY, case="as_received", extra=True, field="idfa")
    assert params == {"hashed_device_id": IDFA_HMAC, "extra_device_ids": extra_device_id(IDFA)}


def test_pre_hashed_ids_pass_through() -> None:
    assert check_hashed_device_id(f" {IDFA_HMAC} ", "hashed_device_id") == IDFA_HMAC
    assert check_hashed_device_id("ABCD1234XYZ", "hashed_device_id") == "ABCD1234XYZ"  # X's
    for bad in ("has space", "x" * 129, "ü", IDFA, f" {ADID} "):  # raw ids are not hashes
        with pytest.raises(InvalidEvent):
            check_hashed_device_id(bad, "hashed_device_id")


def test_redaction_replaces_every_device_id_with_its_hash() -> None:
    record = (
        b'{"idfa": "' + IDFA.encode() + b'", "advertising_id": " ' + ADID.encode() + b'",'
        b' "zero": "' + ZERO.encode() + b'", "broken json'
    )
    redacted = redact_device_ids(record, KEY, "as_received")
    assert IDFA.encode() not in redacted and ADID.encode() not in redacted
    assert b'"idfa": "hmac:' + IDFA_HMAC.encode() + b'"' in redacted
    assert b"hmac:" + ADID_HMAC.encode() in redacted
    assert ZERO.encode() in redacted  # no one's id: it keeps the record a drop
    lower = redact_device_ids(IDFA.encode(), KEY, "lower")
    assert lower == b"hmac:" + independent_hmac(IDFA.lower()).encode()


def test_a_redacted_id_is_taken_as_hashed() -> None:
    redacted = redact_device_ids(IDFA.encode(), KEY, "as_received").decode()
    params = device_id_params(redacted, key=KEY, case="upper", extra=True, field="idfa")
    assert params == {"hashed_device_id": IDFA_HMAC}  # no extra id: the raw id is gone
    with pytest.raises(InvalidEvent):
        device_id_params("hmac:has space", key=KEY, case="as_received", extra=False, field="x")
