"""The types every format adapter shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from relay.config import MappingFile
from relay.normalize.device_ids import DeviceIdCase


@dataclass(frozen=True, slots=True)
class NormalizeContext:
    """What normalization needs besides the record: mappings and defaults from the settings."""

    mapping: MappingFile
    default_phone_region: str | None = None
    device_id_hmac_key: bytes = field(default=b"", repr=False)  # a secret
    device_id_case: DeviceIdCase = "as_received"
    extra_device_ids: bool = False
    # The web adapter's (pixel, account, event ids) as sent -> as checked; bounded by it.
    web_ids: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)  # not frozen: built once per event on the hot path, frozen costs ~1 us
class OutboundEvent:
    """A request-ready, hashed event: what the ingest stage writes to `<prefix>.outbound`.

    `budget_key` is the ad account (the rate-limit key and the outbound record key).
    `target` is the pixel id (web) or the app id (app). `payload` is exactly one entry of X's
    `conversions` array (web: hashed identifiers, twclid, and IP and user agent as X receives
    them), or the query parameters of `conversion_event` (app: hashed device id).
    `ledger_key` is an optional source event id that identifies the conversion across replays
    (the codec in `relay.pipeline.outbound` derives one when it is empty).
    """

    kind: Literal["web", "app"]
    budget_key: str
    target: str
    payload: dict[str, Any]
    ledger_key: str = ""
    identifiers: str | None = None  # the coverage label of the payload, when the adapter knew it


class Adapter(Protocol):
    def __call__(self, record: Any, ctx: NormalizeContext) -> OutboundEvent: ...
