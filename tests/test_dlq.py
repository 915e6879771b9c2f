from relay.pipeline.dlq import Failure, Origin, dead_letter


def test_dead_letter_carries_the_contract_headers() -> None:
    failure = Failure(
        "deliver",
        "retries_exhausted",
        "503 SERVICE_UNAVAILABLE",
        field="event_id",
        http_status=503,
        api_code="SERVICE_UNAVAILABLE",
        attempts=6,
        first_attempt_at=1_700_000_000.0,
        last_attempt_at=1_700_000_060.5,
    )
    record = dead_letter("p.dlq", b"payload", b"acct", failure, Origin("p.outbound", 3, 42))
    headers = {k: v.decode() for k, v in record.headers}
    assert record.topic == "p.dlq" and record.value == b"payload" and record.key == b"acct"
    assert headers == {
        "relay.error.stage": "deliver",
        "relay.error.class": "retries_exhausted",
        "relay.error.message": "503 SERVICE_UNAVAILABLE",
        "relay.error.field": "event_id",
        "relay.error.http_status": "503",
        "relay.error.api_code": "SERVICE_UNAVAILABLE",
        "relay.error.attempts": "6",
        "relay.error.first_attempt_at": "2023-11-14T22:13:20.000Z",
        "relay.error.last_attempt_at": "2023-11-14T22:14:20.500Z",
        "relay.origin.topic": "p.outbound",
        "relay.origin.partition": "3",
        "relay.origin.offset": "42",
    }


def test_unknown_parts_are_left_out() -> None:
    record = dead_letter(
        "d", b"x", None, Failure("ingest", "invalid_json", "bad"), Origin("in", 0, 1)
    )
    names = [k for k, _ in record.headers]
    assert "relay.error.field" not in names and "relay.error.http_status" not in names
