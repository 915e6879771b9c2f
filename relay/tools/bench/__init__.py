"""`relay bench`: scenarios measured on the real broker and the sandbox, each in its own
process, results as JSON (bench/results) and BENCHMARKS.md (`relay bench report`).

Shared parts: procs (child processes, CPU and RSS from /proc), stack (broker + sandbox +
`relay run`), events (realistic input with identities), kafka_io (filling and reading topics),
accounting (lost / dead-lettered / duplicates), e2e (one measured relay run), floor (what the
relay is compared with), results (the JSON), report (BENCHMARKS.md and charts). One module per
scenario: throughput, latency, chaos, outage, faults, broker_pause, budget, hot_cold, memory.
"""

from relay.tools.bench.commands import add_bench_parser, run_bench
from relay.tools.bench.results import machine

__all__ = ["add_bench_parser", "machine", "run_bench"]
