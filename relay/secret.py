"""`Secret`: the one masked type for every secret the relay holds.

Its repr, str and format are masked, so a secret inside a dataclass, an f-string, a log line
or an exception message shows as `**********`; only `.reveal()` gives the value, and only the
code that signs a request or keys an HMAC calls it.
"""

from __future__ import annotations

import hmac
from typing import Final

MASK: Final = "**********"


class Secret:
    """A secret string whose repr and str are masked; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')" if self._value else "Secret('')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            other._value.encode(), self._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would carry the value out of the process unmasked.
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self
