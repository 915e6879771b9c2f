"""Conversion relay: Kafka to the X Ads API conversion endpoints."""

__version__ = "0.1.0"

from relay import hotpath

hotpath.choose()  # a stale compiled build never runs (relay/hotpath.py)
