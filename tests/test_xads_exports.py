import relay.xads


def test_public_surface_is_sorted_and_complete() -> None:
    exported = relay.xads.__all__
    assert exported == sorted(exported)
    assert all(hasattr(relay.xads, name) for name in exported)
