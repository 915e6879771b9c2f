"""Input formats: one adapter per format turns a decoded input record into an outbound event.

Every adapter has the signature of `Adapter`: it takes the decoded JSON object and the
`NormalizeContext`, and returns an `OutboundEvent`, or raises `InvalidEvent` (dead-letter)
or `DroppedEvent` (counted, never sent).

    web, segment                  -> web conversions (kind "web"); shared: web_common
    mobile, appsflyer, adjust,    -> app conversions (kind "app", conversion_event
    branch                           parameters); shared: app_common
    fields                        readers of JSON fields, shared by all
    event_maps                    event names -> X's conversion types, per format
    registry                      format name -> adapter (bound to topics by RELAY_INPUTS)
"""
