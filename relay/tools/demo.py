"""`relay demo`: broker + sandbox + relay + generator on one machine, end to end.

Exits 0 only when every produced event is accounted for: produced = delivered +
dead-lettered + dropped, and each matches what the generator meant it to become.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
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
    dead_letters_by_feed,
    delivery_facts,
    render_app_sample,
    render_facts,
    render_feeds,
    render_sample,
    sample_app_event,
    sample_event,
)
from relay.tools.produce import ProduceSummary, produce
from relay.tools.progress import ProgressLine
from relay.tools.stack import local_stack, sandbox_stats

# X's real budget is 60,000 events per account per 15 minutes, and a new owner's bucket
# starts empty; at that rate the demo would take hours, so it raises the budget.
DEMO_ACCOUNT_LIMIT: Final = 4_500_000
DEMO_WINDOW_S: Final = 900
# The MMP feed beside the web one. Its HMAC key opens nothing: X issues the real one.
APP_FEED_FORMAT: Final = "appsflyer"
DEMO_DEVICE_ID_HMAC_KEY: Final = "cmVsYXktZGVtby1kZXZpY2UtaWQta2V5LW5vdC1yZWFs"


@dataclass
class Tally:
    delivered: int
    dead_lettered: int
    dropped: int
    delivered_web: int = 0
    delivered_app: int = 0

    @property
    def settled(self) -> int:
        return self.delivered + self.dead_lettered + self.dropped


def tally(metrics: Metrics) -> Tally:
    return Tally(
        int(metrics.total("relay_events_delivered")),
        int(metrics.total("relay_events_dead_lettered")),
        int(metrics.total("relay_events_dropped")),
        int(metrics.total("relay_events_delivered", kind="web")),
        int(metrics.total("relay_events_delivered", kind="app")),
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


async def demo(
    count: int, invalid_ratio: float, opt_out_ratio: float, timeout_s: float, app_count: int
) -> int:
    print(
        f"relay demo: {count:,} web events and {app_count:,} {APP_FEED_FORMAT} (MMP) events, "
        f"{invalid_ratio:.0%} broken, {opt_out_ratio:.0%} opted out or not conversions",
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
                "RELAY_INPUTS": f"relay.input.web=web,relay.input.{APP_FEED_FORMAT}="
                f"{APP_FEED_FORMAT}",
                "RELAY_DEVICE_ID_HMAC_KEY": DEMO_DEVICE_ID_HMAC_KEY,
            }
        )
        # The relay never creates input topics; the demo owns its broker, so it does.
        await ensure_topics(settings, list(settings.inputs))
        worker = Worker(settings, http_host="127.0.0.1")
        stop = asyncio.Event()
        worker_task = asyncio.create_task(worker.run(stop))
        progress = Progress()

        so_far: dict[str, int] = {}

        def produced_of(fmt: str) -> Callable[[ProduceSummary], None]:
            def produced(s: ProduceSummary) -> None:
                so_far[fmt] = s.produced
                progress.produced = sum(so_far.values())
                progress.show(tally(worker.metrics))

            return produced

        async def produce_feeds() -> dict[str, ProduceSummary]:
            feeds = {"web": count, APP_FEED_FORMAT: app_count}
            summaries = await asyncio.gather(
                *(
                    produce(
                        settings,
                        fmt=fmt,
                        count=n,
                        invalid_ratio=invalid_ratio,
                        opt_out_ratio=opt_out_ratio,
                        progress=produced_of(fmt),
                    )
                    for fmt, n in feeds.items()
                )
            )
            return dict(zip(feeds, summaries, strict=True))

        producer_task = asyncio.create_task(produce_feeds())
        by_feed: dict[str, ProduceSummary] = {}
        expected = ProduceSummary()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not worker_task.done():
                if producer_task.done():
                    expected = combined(producer_task.result().values())
                    if tally(worker.metrics).settled >= expected.produced:
                        break
                progress.show(tally(worker.metrics))
                await asyncio.sleep(0.25)
            by_feed = await producer_task
            expected = combined(by_feed.values())
        finally:
            producer_task.cancel()
            stop.set()
            await worker_task
        final = tally(worker.metrics)
        progress.show(final, final=True)
        stats = await sandbox_stats(stack.sandbox_url)
        accepted = stats.get("conversions_accepted", 0) + stats.get("app_conversions_accepted", 0)
        web_topic = next(t for t, f in settings.inputs.items() if f == "web")
        sample = await sample_event(settings, stack.sandbox_url, web_topic)
        app_topic = next(t for t, f in settings.inputs.items() if f == APP_FEED_FORMAT)
        app_sample = await sample_app_event(settings, stack.sandbox_url, app_topic, APP_FEED_FORMAT)
        dead_by_feed = await dead_letters_by_feed(settings)
    elapsed = time.monotonic() - progress.started
    print()
    if sample is not None:
        print("\n".join(render_sample(sample)) + "\n")
    if app_sample is not None:
        print("\n".join(render_app_sample(app_sample)) + "\n")
    app_dropped = final.dropped - dropped_web(worker.metrics)
    rows = [
        FeedRow(
            "web",
            by_feed["web"].produced,
            final.delivered_web,
            dead_by_feed["web"],
            final.dropped - app_dropped,
        ),
        FeedRow(
            APP_FEED_FORMAT,
            by_feed[APP_FEED_FORMAT].produced,
            final.delivered_app,
            dead_by_feed["app"],
            app_dropped,
        ),
    ]
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
        "web and app feeds each delivered in full": (
            final.delivered_web == by_feed["web"].deliver
            and final.delivered_app == by_feed[APP_FEED_FORMAT].deliver
        ),
        "the sandbox accepted what the relay delivered": accepted == final.delivered,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


def combined(summaries: Iterable[ProduceSummary]) -> ProduceSummary:
    total = ProduceSummary()
    for s in summaries:
        total.produced += s.produced
        total.deliver += s.deliver
        total.dead_letter += s.dead_letter
        total.drop += s.drop
    return total


def dropped_web(metrics: Metrics) -> int:
    """The web feed's drops: the web generator drops only opted-out events; every other
    drop reason (limit ad tracking, zero device id, not a conversion) is the app feed's."""
    return int(metrics.total("relay_events_dropped", reason="opted_out"))


def run_demo(
    count: int, invalid_ratio: float, opt_out_ratio: float, timeout_s: float, app_count: int
) -> int:
    """SIGTERM or SIGINT stop the demo and everything it started (broker, sandbox, worker)."""
    code = run_until_signalled(demo(count, invalid_ratio, opt_out_ratio, timeout_s, app_count))
    if code > 128:
        print("relay demo: stopped; broker, sandbox and worker are shut down", file=sys.stderr)
    return code
