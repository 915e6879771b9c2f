"""Tools around the relay: the event generator, the demo, the benchmarks."""
