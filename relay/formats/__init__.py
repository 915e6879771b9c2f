"""Input formats: one adapter per format turns a decoded input record into an outbound event.

Every adapter has the signature of `Adapter`: it takes the decoded JSON object and the
`NormalizeContext`, and returns an `OutboundEvent`, or raises `InvalidEvent` (dead-letter)
or `DroppedEvent` (counted, never sent).
"""
