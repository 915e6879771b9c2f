"""The deliver stage: outbound topic -> lanes -> budget -> senders -> X, and the wiring.

    intake    decode the routing line, put each event (a bundle's, one by one) in the lane
              of its budget key
    lanes     (lanes.py) per account: web batches per pixel, or single app requests
    dispatch  per lane, up to RELAY_MAX_IN_FLIGHT_PER_ACCOUNT requests (and
              RELAY_MAX_IN_FLIGHT_REQUESTS overall), each once the circuit, the holds and
              the account's bucket let it go; a batch is never larger than the budget left
    send      (senders.py) one sender per kind
    decide    (policy.py) X's answer -> Done, RetryAfter, Split, HoldTarget, HoldCredential,
              DeadLetter; carried out here
    drain     on stop or revoke: send what is held, within a deadline

A delivery offset finishes only after X answered 2xx (and, for app conversions, X's
attribution is on `<prefix>.attributions`) or the dead letter was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from relay.config import Settings
from relay.errors import BrokerError, ClosedError
from relay.kafka import BatchProducer
from relay.observability.logs import OperationalLog
from relay.observability.metrics import Metrics
from relay.observability.startup import FIRST_DELIVERY
from relay.pipeline import outbound, policy
from relay.pipeline.app_windows import AppWindows
from relay.pipeline.attributions import AttributionPublisher, attribution_record, outcome
from relay.pipeline.consuming import ConsumerStage
from relay.pipeline.dlq import Failure, dead_letter
from relay.pipeline.holds import Circuit, Holds
from relay.pipeline.intake import Intake
from relay.pipeline.lanes import Batch, Lane, LaneTable, Pending
from relay.pipeline.ledger import DeliveredLedger
from relay.pipeline.linger import Linger
from relay.pipeline.membership import subscription
from relay.pipeline.parking import (
    DelayedGate,
    ParkedRecord,
    Parking,
)
from relay.pipeline.ratelimit import RESET_MARGIN_S, TokenBucket
from relay.pipeline.senders import AppSender, Sender, Sent, WebSender
from relay.xads.client import XAdsClient
from relay.xads.errors import ApiError, NotSent, RateLimited, TransportError

log = logging.getLogger(__name__)

DEFAULT_CREDENTIAL: Final = "default"
BUCKET_SWEEP_S: Final = 60.0
RESET_NOTE_S: Final = 0.1  # a reset moved by less is the one already noted


class DeliverStage(ConsumerStage):
    stage = "deliver"

    def __init__(
        self,
        settings: Settings,
        producer: BatchProducer,
        client: XAdsClient | Mapping[str, XAdsClient],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        auth_probe_s: float | None = None,
        ledger: DeliveredLedger | None = None,
        parking: Parking | None = None,
    ):
        super().__init__(settings, metrics)
        self.producer = producer
        self.ledger = ledger
        self.parking = parking
        self.gate: DelayedGate | None = None
        self.clients = (
            {DEFAULT_CREDENTIAL: client} if isinstance(client, XAdsClient) else dict(client)
        )
        self.clock = clock
        self._by_account: dict[str, str] = {}
        self._by_pixel: dict[str, str] = {}
        self._by_app: dict[str, str] = {}
        for named in settings.mapping.named_credentials:
            if named.name in self.clients:
                self._by_account.update(dict.fromkeys(named.accounts, named.name))
                self._by_pixel.update(dict.fromkeys(named.pixels, named.name))
                self._by_app.update(dict.fromkeys(named.apps, named.name))
        self.holds = Holds(
            auth_probe_s or settings.hold_probe_s, clock, target_probe_s=settings.target_probe_s
        )
        self.circuit = Circuit(settings.circuit_failure_ratio, settings.circuit_probe_s, clock)
        self.table = LaneTable(
            lambda: TokenBucket(settings.account_limit, settings.account_window_s, clock)
        )
        self.windows = AppWindows(self._client_for_account, settings.app_tags_refresh_s)
        self.senders: dict[str, Sender] = {
            "web": WebSender(settings.use_pixel_token),
            "app": AppSender(self.windows, settings.mobile_mode),
        }
        self.rules = policy.RetryRules(
            settings.max_attempts, settings.retry_for_s, settings.retry_base_s, settings.retry_max_s
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._attempts: set[asyncio.Task[None]] = set()
        self._requests = asyncio.Semaphore(settings.max_in_flight_requests)
        self._progress = asyncio.Event()
        self._draining = False
        self._revoking: set[TopicPartition] = set()
        # Assigned partitions whose ledger is being rebuilt, and the rebuild.
        self._preparing: dict[TopicPartition, asyncio.Task[None]] = {}
        self._rebuilds: set[asyncio.Task[None]] = set()
        self._over_cap: set[str] = set()
        self._held_keys: dict[str, TopicPartition] = {}  # ledger keys of the events held
        self._park_turn: dict[str, float] = {}  # account -> epoch s its next park is due
        self._swept_at = clock()
        self._gauges_shown: tuple[bool, bool, int] | None = None
        self._announced: dict[str, float] = {}  # account -> reset X announced (epoch s)
        self.peak_lane_in_flight = 0  # the most requests one account had in flight at once
        self.linger = Linger(settings.linger_s)  # longer while behind: fuller requests
        self.ops = OperationalLog(log)
        self.attributions = AttributionPublisher(producer)
        # What a crash would send to X twice: events in requests, and delivered keys the
        # ledger has not written yet. Lanes over RELAY_LEDGER_MAX_UNACKED_KEYS wait here.
        self._events_in_flight = 0
        self._ledger_waiting: set[Lane] = set()
        if ledger is not None:
            ledger.on_written = self._ledger_room_changed

    @property
    def lanes(self) -> dict[str, Lane]:
        return self.table.lanes

    @property
    def credentials_rejected(self) -> bool:
        return bool(self.holds.credentials)

    def blocked_reason(self) -> str | None:
        """Why delivery is held (for readiness), naming a credential, never its value."""
        if self.holds.credentials:
            names = ", ".join(sorted(self.holds.credentials))
            return f"X rejects the credentials (401): {names}"
        if self.circuit.is_open:
            return "X is unavailable (most requests fail): delivery paused, probing"
        return None

    def make_consumer(self) -> AIOKafkaConsumer:
        wanted = subscription(self.settings, "deliver", parked=self.parking is not None)
        consumer = self.new_consumer(wanted.topics, wanted.group_id, **wanted.options)
        self.on_consumer(consumer)
        return consumer

    def on_consumer(self, consumer: AIOKafkaConsumer) -> None:
        if self.parking is not None:
            self.gate = DelayedGate(consumer, self.metrics)

    def credential_for(self, routed: outbound.Routed) -> str:
        """The named credentials of the record's pixel or app, else of its account."""
        by_target = self._by_pixel if routed.kind == "web" else self._by_app
        return by_target.get(routed.target) or self._by_account.get(
            routed.budget_key, DEFAULT_CREDENTIAL
        )

    def _client_for_account(self, account: str) -> XAdsClient:
        return self.clients[self._by_account.get(account, DEFAULT_CREDENTIAL)]

    # -- intake -------------------------------------------------------------------------

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        now = self.clock()
        # A batch lingers from its first event's append (if fresh), not from its read here.
        intake = Intake(
            self.tracker,
            self.ledger,
            self._held_keys,
            self._lane,
            now,
            now - time.time(),
            self.settings.linger_s,
        )
        count = 0
        for tp, messages in batch.items():
            if tp in self._preparing:
                # aiokafka fetches a new partition before its assignment callback (the
                # ledger rebuild) is over: read it again once the ledger knows it.
                if messages and self.consumer is not None:
                    self.consumer.seek(tp, messages[0].offset)
                continue
            delayed = tp.topic == self.settings.delayed_topic
            if delayed and self.gate is not None:
                messages = list(self.gate.admit_batch(tp, messages))  # the due prefix
            events = intake.add(tp, messages, delayed)
            count += events
            if not delayed and messages and self.consumer is not None:
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    # Unread records in events, at this read's events per record (bundles).
                    unread = highwater - messages[-1].offset - 1
                    self.linger.observe(tp, unread * events // len(messages))
        duplicates, touched, undecodable = intake.duplicates, intake.touched, intake.undecodable
        if duplicates:
            self.metrics.dropped.labels("duplicate_skipped").inc(duplicates)
            self.commit_soon()
        self.metrics.consumed.labels("deliver").inc(count)
        for lane in touched:
            lane.wakeup.set()
            if self._parks(lane) and (overflow := self._overflow(lane)):
                await self._park(lane, lane.take_oldest(overflow))
        if undecodable:
            failure = Failure("deliver", "invalid_outbound", "outbound record is not a relay event")
            await self._dead_letter(None, undecodable, failure)
        held = self.tracker.in_flight()
        self.metrics.buffered.set(held)
        settings = self.settings
        room = held < settings.max_buffered_events and (
            self.table.held_bytes() < settings.max_buffered_bytes
        )
        if self.linger.update(buffer_has_room=room):
            self._wake_all()  # batches lingering for the backlog go now
        if now - self._swept_at > BUCKET_SWEEP_S:
            self._swept_at = now
            self.table.expire_buckets(self.settings.account_window_s, now)
            wall = time.time()
            for account in [a for a, at in self._park_turn.items() if at < wall]:
                del self._park_turn[account]
            for account in [a for a, at in self._announced.items() if at < wall]:
                del self._announced[account]

    def _lane(self, routed: outbound.Routed) -> Lane:
        # One lane per account and credentials (agencies may post for one account with
        # several); one bucket per account.
        credential = self.credential_for(routed)
        account = routed.budget_key
        key = account if credential == DEFAULT_CREDENTIAL else f"{account} {credential}"
        lane = self.table.lanes.get(key)
        if lane is None:
            settings = self.settings
            lane = self.table.lanes[key] = Lane(
                key,
                self.table.bucket(account),
                min(settings.web_batch_size, settings.account_limit),
                settings.linger_s,
                credential=credential,
                account=account,
                last_active=self.clock(),
            )
            # A reset X announced outlives the bucket of a revoked partition: when the
            # partition comes back (an eager rebalance), nothing goes before it either.
            reset = self._announced.get(account)
            if reset is not None and (left := reset - time.time()) > 0:
                lane.bucket.block_for(left + RESET_MARGIN_S)
            self._tasks[key] = asyncio.create_task(self._run_lane(lane), name="lane")
        return lane

    def partitions_to_pause(self, assignment: set[TopicPartition]) -> set[TopicPartition]:
        """All partitions over the global caps; else those feeding an account over its caps
        (until it is back under half of them)."""
        settings = self.settings
        paused = super().partitions_to_pause(assignment)
        if paused or self.table.held_bytes() >= settings.max_buffered_bytes:
            return set(assignment)
        result = self._preparing.keys() & assignment  # read once the ledger knows them
        for key, lane in self.table.lanes.items():
            over = lane.held >= settings.max_lane_events or (
                lane.held_bytes >= settings.max_lane_bytes
            )
            under_half = lane.held < settings.max_lane_events // 2 and (
                lane.held_bytes < settings.max_lane_bytes // 2
            )
            if over:
                self._over_cap.add(key)
            elif under_half:
                self._over_cap.discard(key)
            if key in self._over_cap and not self._parks(lane):
                result.update(lane.partitions)  # one that parks its overflow needs no pause
        return result

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        gate = self.gate
        if gate is not None:
            gate.release_due()
        super()._apply_backpressure(consumer)
        if gate is not None and gate.held:
            consumer.pause(*gate.held)  # a resume for backpressure must not release them

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """The delivered ledger of new partitions is read before their first record is
        handled (a replay of a delivered event must be known as one). Not in the group's
        callback: aiokafka sends no heartbeat until the callback returns, and a rebuild
        longer than the session timeout would cost the member its partitions."""
        super().on_assigned(assigned)
        if self.ledger is None or not assigned:
            return
        rebuild = asyncio.create_task(self._rebuild_ledger(assigned), name="ledger-rebuild")
        self._rebuilds.add(rebuild)
        rebuild.add_done_callback(self._rebuilds.discard)
        for tp in assigned:
            self._preparing[tp] = rebuild

    async def _rebuild_ledger(self, assigned: set[TopicPartition]) -> None:
        assert self.ledger is not None
        try:
            await self.ledger.rebuild({tp.partition for tp in assigned})
        except Exception as exc:  # without the ledger, replays would go to X again
            self.fail(exc)
            return
        this = asyncio.current_task()
        for tp in assigned:
            if self._preparing.get(tp) is this:  # not revoked and assigned again meanwhile
                del self._preparing[tp]
        self.timeline.mark("ledger rebuilt")

    async def _park(self, lane: Lane, items: list[Pending], wait_s: float | None = None) -> None:
        """Park events on the delayed topic; once acknowledged their offsets finish here."""
        if not items or self.parking is None:
            return
        due = self._park_due(lane, len(items)) if wait_s is None else time.time() + wait_s
        await self.parking.park(
            [ParkedRecord(p.tp.partition, p.key, p.value, p.source, p.times_parked) for p in items],
            due,
        )
        for p in items:
            self.tracker.finish(p.tp, p.offset)
            self._held_keys.pop(p.routed.ledger_key, None)
        self.metrics.buffered.set(self.tracker.in_flight())
        self.commit_soon()

    def _park_due(self, lane: Lane, count: int) -> float:
        """When `count` events parked now may come back: not before the budget has room for
        them, after the events held and those parked earlier. Each park takes its turn
        after the last, so that an account's overflow comes back a budget's worth at a
        time, not all at once to be read and parked again."""
        bucket, now = lane.bucket, time.time()
        ahead = bucket.wait_time(1) + lane.held / bucket.rate_per_s
        due = max(now + max(ahead, 1.0), self._park_turn.get(lane.account, 0.0))
        self._park_turn[lane.account] = due + count / bucket.rate_per_s
        return due

    def _overflow(self, lane: Lane) -> int:
        """How many events to park to bring an account over its caps back to half of them."""
        settings = self.settings
        count = (
            lane.held - settings.max_lane_events // 2 if lane.held > settings.max_lane_events else 0
        )
        if lane.held_bytes > settings.max_lane_bytes:
            count = max(count, lane.held // 2)
        return count

    def _parks(self, lane: Lane) -> bool:
        """Parking moves an account out of the way of others; while X is down (or rejects
        its credentials) everybody waits alike, and backpressure is the cheaper way."""
        return (
            self.parking is not None
            and not self.circuit.is_open
            and lane.credential not in self.holds.credentials
        )

    def _held_overflow(self, lane: Lane) -> bool:
        if self.parking is None or not lane.waiting or lane.parking:
            return False
        waiting = sum(len(b.items) for queue in lane.waiting.values() for b in queue)
        return waiting > lane.batch_size

    async def _park_held(self, lane: Lane) -> None:
        try:
            overflow = lane.take_waiting_overflow(lane.batch_size)
            await self._park(lane, overflow, self.holds.target_interval_s)
        except Exception as exc:  # the broker refused: stop rather than lose events
            self.fail(exc)
        finally:
            lane.parking = False

    # -- the lane loop: wait for the gates and the budget, then send ------------------------

    async def _run_lane(self, lane: Lane) -> None:
        try:
            while not lane.closed:
                lane.wakeup.clear()
                now = self.clock()
                next_due = lane.flush_due(
                    now, everything=self._draining, linger_s=self.linger.now_s
                )
                lane.release_waiting(self.holds.target_held)
                if self._held_overflow(lane):
                    lane.parking = True  # a held target's later events: parked, bounded
                    self._spawn(self._park_held(lane))
                wait = await self._dispatch(lane)
                if wait == 0:
                    continue
                if lane.idle and not lane.open and not lane.waiting:
                    left = self.settings.lane_idle_s - (now - lane.last_active)
                    if left <= 0:
                        self._reclaim(lane)
                        return
                    wait = left if wait is None else min(wait, left)
                timeouts = [t for t in (wait, next_due) if t is not None]
                # The wake-up's own timer, not wait_for or asyncio.timeout: no task and no
                # context object per wait (thousands of lanes wait).
                await lane.wakeup.wait(max(min(timeouts), 0.001) if timeouts else None)
        except Exception as exc:  # a bug or a broken broker: stop rather than lose events
            self.fail(exc)

    async def _dispatch(self, lane: Lane) -> float | None:
        """Start one request if everything allows it: 0 = started (look again), else the
        seconds to wait (None: until something happens)."""
        if lane.in_flight >= self.settings.max_in_flight_per_account:
            return None
        if self.clock() < lane.paused_until:
            return lane.paused_until - self.clock()
        probe_slot = self._probe_due(lane)
        if probe_slot is None and lane.next_ready(self.holds.target_held) is None:
            # Nothing to send now; a held target's next probe is a time to look again.
            waits = [self.holds.admit(lane.credential, *slot).wait_s for slot in lane.waiting]
            return min(waits) if waits else None
        await self._requests.acquire()
        # Entered after the wait, not before: thousands of lanes wait for a request slot,
        # and an exit stack costs 0.8 KB (its deque) while it waits. No await between the
        # acquire and the stack: a cancel cannot come in between.
        with contextlib.ExitStack() as stack:
            stack.callback(self._requests.release)
            # The world may have moved while waiting for a request slot: decide again.
            if lane.closed:
                return None
            probe_slot = self._probe_due(lane)
            batch = lane.next_ready(self.holds.target_held) if probe_slot is None else None
            if probe_slot is None and batch is None:
                return None
            circuit = self.circuit.admit()
            if not circuit.go:
                return circuit.wait_s
            slot = probe_slot if probe_slot is not None else (batch.kind, batch.target)  # type: ignore[union-attr]
            gate = self.holds.admit(lane.credential, *slot)
            if not gate.go:
                return gate.wait_s
            probe = circuit.probe or gate.probe
            bucket = lane.bucket
            if not bucket.server_known and bucket.in_flight:
                return None  # X's first answer tells the budget left; wait for it
            count = min(1 if probe or batch is None else len(batch.items), bucket.available())
            if count < 1:
                wait = bucket.wait_time(1)
                self.metrics.ratelimit_wait.inc(wait)
                return max(wait, 0.005)
            if not self._ledger_has_room(lane, count):
                return None  # woken once the ledger caught up
            if probe_slot is not None:
                sent = lane.take_waiting(probe_slot)
            else:
                assert batch is not None
                sent = lane.take(batch, count)
            bucket.take(len(sent.items))
            self._events_in_flight += len(sent.items)
            if circuit.probe:
                self.circuit.begin_probe()
            if gate.probe:
                self.holds.begin_probe(lane.credential, sent.kind, sent.target)
            lane.in_flight += 1
            self.peak_lane_in_flight = max(self.peak_lane_in_flight, lane.in_flight)
            stack.pop_all()  # the attempt releases the request slot
        self._spawn(self._attempt(lane, sent, circuit_probe=circuit.probe, hold_probe=gate.probe))
        return 0

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    def _probe_due(self, lane: Lane) -> tuple[str, str] | None:
        """A held target of this lane whose probe is due."""
        for slot in lane.waiting:
            if self.holds.admit(lane.credential, *slot).go:
                return slot
        return None

    # -- one attempt and what X's answer means ------------------------------------------------

    async def _attempt(
        self, lane: Lane, batch: Batch, *, circuit_probe: bool, hold_probe: bool
    ) -> None:
        size = len(batch.items)  # as dispatched: a split or a retry changes the batch
        try:
            await self._attempt_once(
                lane, batch, circuit_probe=circuit_probe, hold_probe=hold_probe
            )
        finally:
            self._events_in_flight -= size
            self._ledger_room_changed()

    async def _attempt_once(
        self, lane: Lane, batch: Batch, *, circuit_probe: bool, hold_probe: bool
    ) -> None:
        probe = circuit_probe or hold_probe
        sender = self.senders[batch.kind]
        account = lane.account if batch.kind == "app" and lane.account != batch.target else None
        first_attempt_at = batch.first_attempt_at or time.time()
        started = time.monotonic()
        answer: Sent | ApiError
        try:
            answer = await sender.send(
                self.clients[lane.credential],
                batch,
                account,
                lambda: self._may_go(lane, batch, probe),
            )
        except ApiError as err:
            answer = err
        except NotSent:
            self._requests.release()
            lane.in_flight -= 1
            self._withheld(lane, batch, circuit_probe=circuit_probe, hold_probe=hold_probe)
            return
        except Exception as exc:
            self._requests.release()
            lane.in_flight -= 1
            self.fail(exc)
            return
        self._requests.release()
        lane.in_flight -= 1
        batch.attempts += 1
        batch.first_attempt_at = first_attempt_at
        self.metrics.api_latency.labels(sender.endpoint).observe(time.monotonic() - started)
        status = "200" if isinstance(answer, Sent) else str(answer.status or "error")
        self.metrics.api_requests.labels(sender.endpoint, status).inc()
        try:
            await self._settle(lane, batch, answer, probe)
        except Exception as exc:  # the broker refused a dead letter or an attribution
            self.fail(exc)
        finally:
            lane.last_active = self.clock()
            lane.wakeup.set()
            self._progress.set()

    def _ledger_has_room(self, lane: Lane, count: int) -> bool:
        """Whether `count` more events may go to X: what a kill -9 would send twice (events
        in requests, delivered keys not yet on the ledger) stays within the cap."""
        if self.ledger is None:
            return True
        unsettled = self._unsettled_events()
        cap = self.settings.ledger_max_unacked_keys
        if unsettled == 0 or unsettled + count <= cap:
            return True
        if not self._ledger_waiting:
            self.metrics.delivery_blocked.labels("ledger_behind").set(1)
            log.info(
                "deliver: %d events in requests or not yet on the delivered ledger (cap %d): "
                "requests wait for the ledger's writes",
                unsettled,
                cap,
            )
        self._ledger_waiting.add(lane)
        return False

    def _unsettled_events(self) -> int:
        """What a kill -9 now would send twice: events in requests, delivered keys unwritten."""
        assert self.ledger is not None
        return self.ledger.unacked_keys + self._events_in_flight

    def _ledger_room_changed(self) -> None:
        """After a ledger write or a request: wake the waiting lanes once the unsettled
        events are down to half the cap (not at every answer: thousands of lanes may wait)."""
        if not self._ledger_waiting or self.ledger is None:
            return
        unsettled = self._unsettled_events()
        if unsettled and unsettled * 2 > self.settings.ledger_max_unacked_keys:
            return
        waiting, self._ledger_waiting = self._ledger_waiting, set()
        self.metrics.delivery_blocked.labels("ledger_behind").set(0)
        for lane in waiting:
            lane.wakeup.set()

    def _may_go(self, lane: Lane, batch: Batch, probe: bool) -> bool:
        """Asked at the wire, once the request holds a connection: what was learned since it
        was dispatched (a 429 for its account, a 401 for its credential, a 403/404 for its
        target, the circuit opening, the partition revoked) withholds it. X announced a reset,
        so nothing of that account may reach X before it, not even what was already queued."""
        if lane.closed or lane.bucket.blocked_for() > 0:
            return False
        go = probe or not (
            self.circuit.is_open
            or lane.credential in self.holds.credentials
            or self.holds.target_held(batch.kind, batch.target)
        )
        if go:
            self._witness_reset(lane.account)
        return go

    def _witness_reset(self, account: str) -> None:
        """Counts a request going to X before the reset X announced for its account, by X's
        own word (its header), apart from the bucket that should have stopped it."""
        reset = self._announced.get(account)
        if reset is None:
            return
        if time.time() >= reset:
            del self._announced[account]
            return
        self.metrics.before_reset.inc()
        log.error(
            "deliver: a request for account %s went %.3fs before the reset X announced",
            account,
            reset - time.time(),
            extra={"account": account},
        )

    def _withheld(self, lane: Lane, batch: Batch, *, circuit_probe: bool, hold_probe: bool) -> None:
        """A request `_may_go` stopped: nothing reached X, so nothing is charged or counted;
        the batch goes back to the head of its lane (a closed lane's new owner reads it again)."""
        lane.bucket.settle(len(batch.items), counted=0)
        if circuit_probe:
            self.circuit.probing = False
        if hold_probe:
            self.holds.cancel_probe(lane.credential, batch.kind, batch.target)
        self.metrics.retries.labels("withheld").inc()
        if not lane.closed:
            lane.retry(batch)
        lane.wakeup.set()
        self._progress.set()

    def _observe_budget(self, lane: Lane, batch: Batch, answer: Sent | ApiError) -> None:
        size = len(batch.items)
        if isinstance(answer, Sent):
            counted = min(answer.processed, size)
        elif isinstance(answer, TransportError):
            counted = size  # X may have counted it; its next answer says
        else:
            counted = 0  # X answered an error: nothing processed (no partial success)
        lane.bucket.settle(size, counted=counted)
        if counted < size:
            self.metrics.tokens_refunded.inc(size - counted)
        info = answer.rate_limit
        if info.remaining is not None:
            reset_in = info.reset_epoch_s - time.time() if info.reset_epoch_s else None
            lane.bucket.observe_server(info.remaining, reset_in, info.limit)
        self._remember_reset(lane.account, answer)

    def _remember_reset(self, account: str, answer: Sent | ApiError) -> None:
        """The reset X announced (a 429, or nothing remaining), as X wrote it."""
        info = answer.rate_limit
        spent = isinstance(answer, RateLimited) or info.remaining == 0
        if not spent:
            return
        now = time.time()
        resets = [
            r
            for r in (
                info.reset_epoch_s,
                now + info.retry_after_s if info.retry_after_s is not None else None,
            )
            if r is not None
        ]
        if resets and max(resets) > now:
            self._announced[account] = max(max(resets), self._announced.get(account, 0.0))

    async def _settle(self, lane: Lane, batch: Batch, answer: Sent | ApiError, probe: bool) -> None:
        err = answer if isinstance(answer, ApiError) else None
        outage = err is not None and policy.is_outage(err)
        self.circuit.record(not outage, probe=probe)
        blocked_until = lane.bucket.blocked_until
        self._observe_budget(lane, batch, answer)
        blocked_until = self._note_reset(lane, blocked_until)
        if err is None or (err.status not in (401, None) and not outage):
            self._release(lane.credential, None)  # X took the credentials
        if err is None or err.status in (400, 429):
            self._release(None, (batch.kind, batch.target))  # X knows the target
        action = policy.decide(
            answer.processed if isinstance(answer, Sent) else answer,
            policy.BatchState(
                len(batch.items),
                batch.attempts,
                batch.charged,
                batch.first_attempt_at or time.time(),
                time.time(),
                self.circuit.healthy,
            ),
            self.rules,
        )
        if probe and isinstance(action, policy.RetryAfter):
            self.holds.abandon_probe(lane.credential, batch.kind, batch.target)
        self._update_gauges()
        if isinstance(action, policy.Done):
            assert isinstance(answer, Sent)
            await self._delivered(lane, batch, answer)
            return
        if isinstance(action, policy.DeadLetter | policy.HoldTarget):
            assert err is not None
            if isinstance(action, policy.HoldTarget):
                self._hold_target(batch, err)
            await self._dead_letter(lane, batch.items, self._failure_for(batch, action, err))
            return
        if self._lost(lane, batch):
            return  # revoked meanwhile: the new owner reads these again; never retried here
        if isinstance(action, policy.HoldCredential):
            self.holds.hold_credential(lane.credential)
            self._update_gauges()
            lane.retry(batch)  # not charged: the credentials, not the events, are at fault
        elif isinstance(action, policy.Split):
            first, second = batch.split()  # no partial success: bisect to the bad events
            lane.retry(second)
            lane.retry(first)
            self.metrics.retries.labels("split").inc()
            self.ops.split(lane.account, batch.target, len(batch.items), err.code if err else None)
        elif isinstance(action, policy.RetryAfter):
            if action.counts_attempt:
                batch.charged += 1
            if action.block_account:
                lane.bucket.block_for(action.delay_s)
                self._note_reset(lane, blocked_until)
                self.ops.rate_limited(lane.account, action.delay_s, batch.target)
            else:
                lane.paused_until = max(lane.paused_until, self.clock() + action.delay_s)
            lane.retry(batch)
            self.metrics.retries.labels(action.reason).inc()
            if action.reason != "rate_limited":
                log.info(
                    "deliver: %s; %d events again in %.2fs (attempt %d)",
                    err,
                    len(batch.items),
                    action.delay_s,
                    batch.attempts,
                )

    def _note_reset(self, lane: Lane, blocked_until: float) -> float:
        """One line when X's answer moved the account's reset later: the moment the relay
        learned it (nothing for the account may start after it, before the reset)."""
        bucket = lane.bucket
        if bucket.blocked_until > max(blocked_until, self.clock()) + RESET_NOTE_S:
            wait = bucket.blocked_for()
            log.info(
                "deliver: account %s waits %.3fs for the reset X announced",
                lane.account,
                wait,
                extra={"account": lane.account, "wait_s": round(wait, 3)},
            )
        return bucket.blocked_until

    def _lost(self, lane: Lane, batch: Batch) -> bool:
        return lane.closed or any(
            p.tp in self._revoking or p.tp not in self.assigned for p in batch.items
        )

    def _release(self, credential: str | None, target: tuple[str, str] | None) -> None:
        if credential is not None and credential in self.holds.credentials:
            self.holds.release_credential(credential)
            self._wake_all()
        if target is not None and self.holds.target_held(*target):
            self.holds.release_target(*target)
            self._wake_all()
        self._update_gauges()

    def _hold_target(self, batch: Batch, err: ApiError) -> None:
        if self.holds.hold_target(batch.kind, batch.target, err.code):
            self.metrics.target_holds.labels(batch.kind, err.code or str(err.status)).inc()
            account = batch.items[0].routed.budget_key
            self.ops.target_stopped(account, batch.target, err.status, err.code)
            log.error(
                "X refuses %s target %s (%s %s): its events wait, probing every %.0fs",
                batch.kind,
                batch.target,
                err.status,
                err.code,
                self.holds.target_interval_s,
            )

    def _update_gauges(self) -> None:
        # Runs after every answer of X: the gauges are set only when what they show changed.
        state = (bool(self.holds.credentials), self.circuit.is_open, len(self.holds.targets))
        if state == self._gauges_shown:
            return
        self._gauges_shown = state
        blocked = self.metrics.delivery_blocked
        blocked.labels("credential_rejected").set(1 if self.holds.credentials else 0)
        blocked.labels("circuit_open").set(1 if self.circuit.is_open else 0)
        self.metrics.credentials_ok.set(0 if self.holds.credentials else 1)
        self.metrics.held_targets.set(len(self.holds.targets))

    def _wake_all(self) -> None:
        for lane in self.table.lanes.values():
            lane.wakeup.set()

    async def _delivered(self, lane: Lane, batch: Batch, sent: Sent) -> None:
        size = len(batch.items)
        if sent.processed != size:
            self.metrics.processed_mismatch.labels(batch.kind).inc()
            log.warning(
                "X processed %d of %d %s conversions sent to %s",
                sent.processed,
                size,
                batch.kind,
                batch.target,
            )
        if self.ledger is not None:
            # The keys, not digests kept from intake: 50,000 held events would keep as many
            # 16-byte objects; a batch's keys are converted in one call here.
            by_partition: dict[int, list[str]] = {}
            for p in batch.items:
                by_partition.setdefault(p.tp.partition, []).append(p.routed.ledger_key)
            for partition, keys in by_partition.items():
                self.ledger.record(partition, keys)
        if batch.kind == "app" and sent.params is not None:
            (item,) = batch.items
            mode = self.settings.mobile_mode
            source = item.source
            record = attribution_record(
                self.settings.attributions_topic,
                sent.params,
                sent.answer,
                "check" if mode == "check" else "record",
                (source.topic, source.partition, source.offset),
            )
            await self.attributions.publish(record)
            self.metrics.observe_attribution(outcome(sent.answer) == "attributed")
        self.metrics.batch_size.labels(batch.kind).observe(size)
        items = batch.items
        payloads: list[Mapping[str, Any] | bytes | str] = (
            [sent.params]
            if sent.params is not None
            # web: the label of the routing line, else the payload read as bytes
            else [p.routed.identifiers or p.routed.payload for p in items]
        )
        self.metrics.observe_delivered(
            batch.kind, payloads, [p.timestamp_ms for p in items], account=lane.account
        )
        self.timeline.mark(FIRST_DELIVERY)
        self._finish(lane, batch.items)

    @staticmethod
    def _failure_for(
        batch: Batch, action: policy.DeadLetter | policy.HoldTarget, err: ApiError
    ) -> Failure:
        return Failure(
            "deliver",
            action.error_class,
            err.message,
            field=err.parameter,
            http_status=err.status,
            api_code=err.code,
            attempts=batch.attempts,
            first_attempt_at=batch.first_attempt_at,
            last_attempt_at=time.time(),
        )

    async def _dead_letter(self, lane: Lane | None, items: list[Pending], failure: Failure) -> None:
        dlq = self.settings.dlq_topic
        records = [dead_letter(dlq, p.value, p.key, failure, p.source, p.headers) for p in items]
        await self.producer.send_and_wait(records)
        self.metrics.dead_lettered.labels("deliver", failure.error_class).inc(len(items))
        self.ops.dead_lettered(
            "deliver",
            failure.error_class,
            len(items),
            failure.message,
            account=lane.account if lane else None,
            status=failure.http_status,
            code=failure.api_code,
        )
        self._finish(lane, items)

    def _finish(self, lane: Lane | None, items: list[Pending]) -> None:
        finish, forget = self.tracker.finish, self._held_keys.pop
        for p in items:
            finish(p.tp, p.offset)
            forget(p.routed.ledger_key, None)
        if lane is not None:
            lane.done(items)
        self.metrics.buffered.set(self.tracker.in_flight())
        self._progress.set()
        self.commit_soon()

    # -- drain, revoke, close ---------------------------------------------------------------

    async def drain(self, deadline_s: float, partitions: set[TopicPartition] | None = None) -> None:
        """Send what is held now (no linger) until none of `partitions` (default: all) is in
        flight, or the deadline."""
        deadline = time.monotonic() + deadline_s
        self._draining = True
        try:
            self._wake_all()
            while self.tracker.in_flight(partitions) and self._failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "deliver: %d events not finished at the deadline; they will be read again",
                        self.tracker.in_flight(partitions),
                    )
                    break
                self._progress.clear()
                with contextlib.suppress(TimeoutError):  # not wait_for: it may drop a cancel
                    async with asyncio.timeout(remaining):
                        await self._progress.wait()
        finally:
            self._draining = False

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._revoking |= revoked
        for tp in revoked:
            self._preparing.pop(tp, None)
        try:
            await super().on_revoked(revoked)
        finally:
            self._revoking -= revoked
        if self.ledger is not None:
            await self._flush_ledger()
            self.ledger.forget({tp.partition for tp in revoked} - self._still_owned())
        if self.gate is not None:
            self.gate.forget(revoked)
        self.linger.forget(revoked)
        for key in [k for k, tp in self._held_keys.items() if tp in revoked]:
            del self._held_keys[key]
        self.table.forget_partitions(revoked)  # first: it reads the lanes' partitions
        for key, lane in list(self.table.lanes.items()):
            if not revoked.isdisjoint(lane.partitions) or lane.idle:
                lane.drop_partitions(revoked)
                self._close_lane(key)  # its bucket went with the partition

    async def _flush_ledger(self) -> None:
        """Before revoked partitions leave memory, their delivered keys must be on the
        ledger topic: the next owner (this worker again, after an eager rebalance, or
        another) reads them from there, and the offsets past them may not be committed."""
        assert self.ledger is not None
        try:
            await asyncio.wait_for(self.ledger.flush(), self.settings.revoke_drain_s)
        except (TimeoutError, BrokerError, ClosedError) as exc:
            log.warning("deliver: the delivered ledger was not flushed before the revoke: %r", exc)

    def _still_owned(self) -> set[int]:
        return {tp.partition for tp in self.assigned}

    def _reclaim(self, lane: Lane) -> None:
        self.table.reclaim(lane.key)
        self._tasks.pop(lane.key, None)

    def _close_lane(self, key: str) -> None:
        lane = self.table.lanes.get(key)
        if lane is not None:
            lane.closed = True
        self.table.reclaim(key)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            for rebuild in self._rebuilds:
                rebuild.cancel()
            tasks = [*self._tasks.values(), *self._attempts, *self._rebuilds]
            for key in list(self.table.lanes):
                self._close_lane(key)
            for task in self._attempts:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.windows.close()
