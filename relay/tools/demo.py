"""`relay demo`: broker + sandbox + relay + generator on one machine, end to end.

Exits 0 only when every produced event is accounted for: produced = delivered +
dead-lettered + dropped, and each matches what the generator meant it to become.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Final

from relay.broker import free_port
from relay.config import default_mapping_path, load_settings
from relay.kafka import ensure_topics
from relay.observability.metrics import Metrics
from relay.pipeline.worker import Worker
from relay.signals import run_until_signalled
from relay.tools.demo_report import (
    FeedRow,
    delivery_facts,
    render_facts,
    render_feeds,
    render_sample,
    sample_event,
)
from relay.tools.produce import ProduceSummary, produce
from relay.tools.progress import ProgressLine
from relay.tools.stack import local_stack, sandbox_stats

# X's real budget is 60,000 events per account per 15 minutes, and a new owner's bucket
# starts empty; at that rate the demo would take hours, so it raises the budget.
DEMO_ACCOUNT_LIMIT: Final = 4_500_000
DEMO_WINDOW_S: Final = 900


@dataclass
class Tally:
    delivered: int
    dead_lettered: int
    dropped: int

    @property
    def settled(self) -> int:
        return self.delivered + self.dead_lettered + self.dropped


def tally(metrics: Metrics) -> Tally:
    return Tally(
        int(metrics.total("relay_events_delivered")),
        int(metrics.total("relay_events_dead_lettered")),
        int(metrics.total("relay_events_dropped")),
    )


class Progress:
    """The live line: one on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self.line = ProgressLine()
        self.started = time.monotonic()
        self.produced = 0  # only ever what the generator has sent so far: never goes back

    def show(self, t: Tally, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        text = (
            f"[{elapsed:5.1f}s] produced {self.produced:,}  delivered {t.delivered:,}  "
            f"dead-lettered {t.dead_lettered:,}  dropped {t.dropped:,}  "
            f"({t.delivered / elapsed if elapsed else 0:,.0f} events/s delivered)"
        )
        if final:
            self.line.done(text)
        else:
            self.line.show(text)


async def demo(count: int, invalid_ratio: float, opt_out_ratio: float, timeout_s: float) -> int:
    print(
        f"relay demo: {count:,} web events, {invalid_ratio:.0%} broken, "
        f"{opt_out_ratio:.0%} opted out",
        file=sys.stderr,
    )
    print(
        f"  account budget raised to {DEMO_ACCOUNT_LIMIT:,} events per {DEMO_WINDOW_S} s "
        "(X's real limit is 60,000) so that the demo finishes in under a minute",
        file=sys.stderr,
    )
    env = {
        "RELAY_ACCOUNT_LIMIT": str(DEMO_ACCOUNT_LIMIT),
        "RELAY_ACCOUNT_WINDOW_S": str(DEMO_WINDOW_S),
    }
    async with local_stack(env) as stack:
        print(f"  broker {stack.bootstrap}, sandbox {stack.sandbox_url}", file=sys.stderr)
        settings = load_settings(
            {
                **env,
                "RELAY_KAFKA_BOOTSTRAP": stack.bootstrap,
                "RELAY_API_BASE_URL": stack.sandbox_url,
                "RELAY_CONFIG": str(default_mapping_path()),
                "RELAY_KAFKA_SESSION_TIMEOUT_MS": "2000",
                "RELAY_HTTP_PORT": str(free_port()),
            }
        )
        # The relay never creates input topics; the demo owns its broker, so it does.
        await ensure_topics(settings, list(settings.inputs))
        worker = Worker(settings, http_host="127.0.0.1")
        stop = asyncio.Event()
        worker_task = asyncio.create_task(worker.run(stop))
        progress = Progress()

        def produced(s: ProduceSummary) -> None:
            progress.produced = s.produced
            progress.show(tally(worker.metrics))

        producer_task = asyncio.create_task(
            produce(
                settings,
                count=count,
                invalid_ratio=invalid_ratio,
                opt_out_ratio=opt_out_ratio,
                progress=produced,
            )
        )
        expected = ProduceSummary()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not worker_task.done():
                if producer_task.done():
                    expected = producer_task.result()
                    if tally(worker.metrics).settled >= expected.produced:
                        break
                progress.show(tally(worker.metrics))
                await asyncio.sleep(0.25)
            expected = await producer_task
        finally:
            producer_task.cancel()
            stop.set()
            await worker_task
        final = tally(worker.metrics)
        progress.show(final, final=True)
        accepted = (await sandbox_stats(stack.sandbox_url)).get("conversions_accepted")
        web_topic = next(t for t, f in settings.inputs.items() if f == "web")
        sample = await sample_event(settings, stack.sandbox_url, web_topic)
    elapsed = time.monotonic() - progress.started
    print()
    if sample is not None:
        print("\n".join(render_sample(sample)) + "\n")
    rows = [FeedRow("web", expected.produced, final.delivered, final.dead_lettered, final.dropped)]
    print("\n".join(render_feeds(rows)))
    print("\n".join(render_facts(delivery_facts(worker.metrics))))
    print(
        f"\nsummary: produced {expected.produced:,}, delivered {final.delivered:,} "
        f"(sandbox accepted {accepted}), dead-lettered {final.dead_lettered:,}, "
        f"dropped {final.dropped:,} in {elapsed:.1f}s "
        f"({final.delivered / elapsed:,.0f} events/s)"
    )
    checks = {
        "every event accounted for": final.settled == expected.produced,
        "all valid events delivered": final.delivered == expected.deliver,
        "exactly the invalid events dead-lettered": final.dead_lettered == expected.dead_letter,
        "exactly the opted-out events dropped": final.dropped == expected.drop,
        "the sandbox accepted what the relay delivered": accepted == final.delivered,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


def run_demo(count: int, invalid_ratio: float, opt_out_ratio: float, timeout_s: float) -> int:
    """SIGTERM or SIGINT stop the demo and everything it started (broker, sandbox, worker)."""
    code = run_until_signalled(demo(count, invalid_ratio, opt_out_ratio, timeout_s))
    if code > 128:
        print("relay demo: stopped; broker, sandbox and worker are shut down", file=sys.stderr)
    return code
