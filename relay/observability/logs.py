"""One default logging configuration, and rate-limited lines for what repeats.

`RELAY_LOG_FORMAT=json` writes one JSON object a line: `ts`, `level`, `logger`, `message`
and, where the call gave them, the coordinates `account`, `target`, `stage`, `error_class`,
`status`, `code`, `count`, `origin` (topic/partition/offset). `text` (the default) writes the
same as `... key=value`. Log lines never carry secrets or raw identifiers.

`OperationalLog` writes at most one line per kind of event (a dead-letter class, a 429
hold, a split, a 403/404 stop) per interval, and says how many it left out.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from relay.config import LOG_FORMATS, LOG_LEVELS
from relay.errors import ConfigError

CONTEXT_FIELDS: Final = (
    "account",
    "target",
    "stage",
    "error_class",
    "status",
    "code",
    "count",
    "wait_s",
    "suppressed",
    "origin",
)
DEFAULT_INTERVAL_S: Final = 60.0


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: getattr(record, name)
        for name in CONTEXT_FIELDS
        if getattr(record, name, None) is not None
    }


class JsonFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            # Microseconds: lines of one moment stay in order, and can be matched with what
            # another process saw at that moment.
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            + f".{int(record.created % 1 * 1_000_000):06d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return line


def parse_level(value: str) -> int:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log level {value!r} is not one of {', '.join(LOG_LEVELS)}")
    return int(getattr(logging, level))


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Root logging at `level` (RELAY_LOG_LEVEL) in `fmt` (RELAY_LOG_FORMAT: text or json)."""
    numeric = parse_level(level)
    name = fmt.strip().lower()
    if name not in LOG_FORMATS:
        raise ConfigError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if name == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiokafka logs every rebalance and retry at INFO; keep the relay's own lines readable.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))
    handler.addFilter(KAFKA_CLIENT_FILTER)


class KafkaClientFilter(logging.Filter):
    """aiokafka logs every failed connect and request: while the broker is known to be gone
    (the broker watch says so) nothing of it passes, and otherwise a message of the same
    template passes at most once per `every_s`."""

    def __init__(self, every_s: float = 30.0):
        super().__init__()
        self.every_s = every_s
        self.quiet = False
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        if self.quiet:
            return False
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last < self.every_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = record.created
        return True


KAFKA_CLIENT_FILTER = KafkaClientFilter()


def quiet_kafka_client(quiet: bool) -> None:
    KAFKA_CLIENT_FILTER.quiet = quiet


class RateLimitedLogger:
    """At most one line per key per `interval_s`; the next line says how many were left out."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, level: int, message: str, *args: Any, **context: Any) -> bool:
        """Log unless `key` was logged less than `interval_s` ago; True when written."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            context["suppressed"] = suppressed
        self.logger.log(level, message, *args, extra=context)
        return True


class OperationalLog:
    """The lines an operator needs when delivery goes wrong, one per kind per interval."""

    def __init__(self, logger: logging.Logger, interval_s: float = DEFAULT_INTERVAL_S):
        self._log = RateLimitedLogger(logger, interval_s)

    def dead_lettered(
        self,
        stage: str,
        error_class: str,
        count: int,
        message: str,
        *,
        account: str | None = None,
        target: str | None = None,
        origin: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self._log.log(
            f"dlq:{stage}:{error_class}",
            logging.WARNING,
            "dead-lettered %d %s record(s): %s",
            count,
            error_class,
            message,
            stage=stage,
            error_class=error_class,
            count=count,
            account=account,
            target=target,
            origin=origin,
            status=status,
            code=code,
        )

    def rate_limited(self, account: str, wait_s: float, target: str | None = None) -> None:
        self._log.log(
            "hold:429",
            logging.WARNING,
            "X answered 429: account holds for %.1fs",
            wait_s,
            account=account,
            target=target,
            status=429,
            wait_s=round(wait_s, 3),
        )

    def split(self, account: str, target: str, count: int, code: str | None) -> None:
        self._log.log(
            "split:400",
            logging.WARNING,
            "X answered 400 for a batch of %d: splitting it to find the invalid events",
            count,
            account=account,
            target=target,
            status=400,
            code=code,
            count=count,
        )

    def target_stopped(
        self, account: str, target: str, status: int | None, code: str | None
    ) -> None:
        self._log.log(
            f"stop:{status}",
            logging.ERROR,
            "X answered %s for this account/target: its events are dead-lettered",
            status,
            account=account,
            target=target,
            status=status,
            code=code,
        )
