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
