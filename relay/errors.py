"""The relay's exceptions.

    RelayError                      base of everything the relay raises on purpose
    ├── ConfigError                 a setting or the mapping file is wrong (exit 2)
    │                               .problems: each (setting, what is wrong)
    ├── InvalidEvent                an input record cannot become a conversion (-> DLQ)
    │                               .error_class, .field, .message
    ├── DroppedEvent                a record that is deliberately not sent (counted)
    │                               .reason: opted_out | limit_ad_tracking |
    │                               zero_device_id | no_device_id | not_a_conversion |
    │                               unmapped_event
    └── BrokerError                 the Kafka broker could not be reached or started

    RuntimeError
    └── ClosedError                 a component used before open or after close (misuse)

API errors live in `relay.xads.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class RelayError(Exception):
    """Base class of the relay's own errors."""


class Problem(NamedTuple):
    """One thing wrong with the configuration: the setting it concerns and what is wrong.

    The message never holds a secret's value.
    """

    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


class ConfigError(RelayError):
    """A setting, environment variable or mapping file entry is invalid.

    `problems` lists every problem found (the loader reports them all at once); the message
    is one line per problem unless given.
    """

    def __init__(self, message: str = "", *, problems: Sequence[Problem] = ()):
        self.problems = tuple(problems)
        super().__init__(message or "\n".join(str(p) for p in self.problems))


class InvalidEvent(RelayError):
    """An input record that cannot become a conversion; it goes to the dead-letter topic.

    `error_class` is machine-readable (invalid_json, invalid_encoding, invalid_event,
    too_large, unknown_pixel, ...); `field` names the offending field when known.
    """

    def __init__(
        self, message: str, *, field: str | None = None, error_class: str = "invalid_event"
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.error_class = error_class


class DroppedEvent(RelayError):
    """A record deliberately not sent (opted out, not a conversion): counted, not dead-lettered."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BrokerError(RelayError):
    """The Kafka broker could not be started or reached."""


class ClosedError(RuntimeError):
    """A long-lived component was used before it was opened or after it was closed."""
