"""Conversion relay: Kafka to the X Ads API conversion endpoints."""

__version__ = "0.1.0"
