"""Access X withdraws while the sandbox runs (`/_sandbox/access`), until it is given back:

- a revoked access token: every request it signs answers X's 401, as if the user had revoked
  the app or X had expired the token (the signature is still checked first);
- a denied account, pixel or app: the conversion endpoints answer 403 or 404 for it (after
  authentication, as X's own checks come in that order), with X's code for that status.

`POST /_sandbox/access` replaces what is in force, `DELETE` gives everything back:

    {"revoked_tokens": ["1000000001-..."],
     "deny": {"pixels": {"o8z6j": 403}, "accounts": {"18ce55ab3cd": 404},
              "apps": {"333903271": {"status": 404, "code": "MACT_APP_NOT_FOUND"}}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from relay.errors import ConfigError
from relay.sandbox.responses import XApiError

KINDS: Final = ("accounts", "pixels", "apps")
# X's code for each kind and status when the denial names none.
DEFAULT_CODES: Final[Mapping[tuple[str, int], str]] = {
    ("accounts", 403): "ACCOUNT_NOT_FOUND",
    ("accounts", 404): "NOT_FOUND",
    ("pixels", 403): "ACCOUNT_NOT_FOUND",
    ("pixels", 404): "WEB_EVENT_TAG_NOT_FOUND",
    ("apps", 403): "ACCOUNT_NOT_FOUND",
    ("apps", 404): "MACT_APP_NOT_FOUND",
}
_PARAMETER: Final = {"accounts": "account_id", "pixels": "pixel_id", "apps": "app_id"}


class AccessError(ConfigError):
    """An access document that cannot be applied (an unknown field, a status not 403/404)."""


@dataclass(frozen=True, slots=True)
class Denial:
    status: int  # 403 | 404
    code: str

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code}


@dataclass(frozen=True, slots=True)
class Access:
    """What is withdrawn; the default withdraws nothing."""

    revoked_tokens: frozenset[str] = frozenset()
    denied: Mapping[str, Mapping[str, Denial]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frozen = {kind: MappingProxyType(dict(self.denied.get(kind, {}))) for kind in KINDS}
        object.__setattr__(self, "denied", MappingProxyType(frozen))

    @property
    def active(self) -> bool:
        return bool(self.revoked_tokens) or any(self.denied.values())

    def refuse(
        self,
        *,
        account_id: str,
        pixel_id: str | None = None,
        app_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """XApiError(403|404) when the target or its account is denied."""
        for kind, target in (("pixels", pixel_id), ("apps", app_id), ("accounts", account_id)):
            denial = self.denied[kind].get(target) if target is not None else None
            if denial is not None:
                raise XApiError.single(
                    denial.status,
                    denial.code,
                    f"{kind[:-1].capitalize()} {target} is not available",
                    _PARAMETER[kind],
                    params,
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "revoked_tokens": sorted(self.revoked_tokens),
            "deny": {
                kind: {target: d.to_json() for target, d in sorted(self.denied[kind].items())}
                for kind in KINDS
            },
            "active": self.active,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Access:
        if not isinstance(raw, dict):
            raise AccessError("access must be a JSON object")
        unknown = sorted(str(k) for k in raw if k not in ("revoked_tokens", "deny"))
        if unknown:
            raise AccessError(f"unknown access field(s): {', '.join(unknown)}")
        tokens = raw.get("revoked_tokens", [])
        if not isinstance(tokens, list) or not all(type(t) is str and t for t in tokens):
            raise AccessError("revoked_tokens must be a list of access tokens")
        deny = raw.get("deny", {})
        if not isinstance(deny, dict):
            raise AccessError('deny must be an object like {"pixels": {"o8z6j": 403}}')
        unknown = sorted(str(k) for k in deny if k not in KINDS)
        if unknown:
            raise AccessError(f"deny takes accounts, pixels and apps, not {', '.join(unknown)}")
        denied: dict[str, dict[str, Denial]] = {}
        for kind, targets in deny.items():
            if not isinstance(targets, dict):
                raise AccessError(f"deny.{kind} must be an object of id -> status")
            denied[kind] = {str(t): _denial(kind, t, value) for t, value in targets.items()}
        return cls(frozenset(tokens), denied)


def _denial(kind: str, target: str, value: Any) -> Denial:
    status, code = (
        (value.get("status"), value.get("code"))
        if isinstance(value, dict)
        else (
            value,
            None,
        )
    )
    if type(status) is not int or status not in (403, 404):
        raise AccessError(f"deny.{kind}.{target}: the status must be 403 or 404")
    if code is not None and (type(code) is not str or not code):
        raise AccessError(f"deny.{kind}.{target}: the code must be a non-empty string")
    return Denial(status, code or DEFAULT_CODES[kind, status])
