"""Normalization shared by the format adapters: identifiers and hashing, timestamps, money,
conversion ids. Each function validates one field and raises `InvalidEvent` naming it; none
ever puts a raw value in an error message.
"""
