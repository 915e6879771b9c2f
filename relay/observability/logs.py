"""One default logging configuration. Log lines never carry secrets or raw identifiers."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # aiokafka logs every rebalance and retry at INFO; keep the relay's own lines readable.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if KAFKA_CLIENT_FILTER not in handler.filters:
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
