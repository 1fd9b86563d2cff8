"""The dispatcher: one loop per channel claims due outbox rows and hands them to its sender.

    claim (a few rows, at most one per person: the oldest not yet sent)
      └─> send, several at a time, at the channel's pace
            └─> record each outcome as soon as it is known (its own small transaction)

Guarantees, and why:
- One person's messages leave in the order they were written, whichever process sends them:
  a row is claimed only when no older row to the same address is queued or sending.
- A slow or failing provider slows only its own channel: each channel has its own loop,
  claims, concurrency and rate.
- Every process on one database shares each channel's rate (bot/delivery/ratelimit.py): two
  `votz run` together stay under the provider's limit; a 429 with retry_after pauses the
  channel in each of them. Replies take the next slot before bulk messages, and are claimed
  as soon as they are queued, even while a bulk backlog drains.
- A crash re-sends at most what was in flight: each send is recorded as it completes; on
  start a process releases the claims it held before (they are known by its instance name);
  another process's claims come back after a lease.
- A person who stopped (or was blocked, or erased) gets nothing queued before: claims skip
  their rows and cancel them; only rows marked `unconditional` (the answer to STOP) go.
- Bulk messages (announcements, reminders, broadcasts, outcomes) leave only inside the
  channel's sending window (`VOTZ_<CHANNEL>_SENDING_WINDOW`); replies never wait for it.
- An error after the provider may have accepted a message (an unexpected exception in a
  sender) is never retried: the row fails with "outcome unknown" instead of going twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from bot.channels.base import (
    PermanentSendError,
    Sender,
    TransientSendError,
    error_summary,
    mask_address,
)
from bot.delivery.outbox import (
    OutboxItem,
    OutboxStatus,
    Sent,
    cancel_stopped,
    claim,
    mark_all_sent,
    mark_failed,
    mark_retry,
    release_claims,
)
from bot.delivery.ratelimit import Budget, shared_budget
from bot.delivery.windows import ALWAYS, Window, Windows
from bot.metrics import Metrics
from bot.store.db import Database
from bot.store.repo import set_participant_status

log = logging.getLogger("votz.dispatcher")
CANCEL_EVERY = 30.0  # seconds between two sweeps of rows left for people who stopped
# A fast channel (1,000 messages a second) needs more rows claimed at once than a slow one:
# at least its rate's worth of this many seconds. (More sends under way, which a crash may
# repeat, only when its sender asks for them: `concurrency`.)
CLAIM_SECONDS = 0.25
MOST_CLAIMED = 500
# While other sends are under way, the writer of outcomes waits up to this long for theirs to
# join the same transaction: at 1,000 messages a second on SQLite, 8 outcomes to a commit
# instead of 1.3, and the sending process's CPU from 92 % of a core to 57-68 %
# (bench/broadcast.py). A send keeps its place among the `concurrency` until its outcome is
# written, as before.
RECORD_GATHER = 0.005
Record = Callable[[Connection], object]
Outcome = Sent | Record  # what to write about one send: most often, that it was sent


def write_outcomes(conn: Connection, outcomes: list[Outcome]) -> None:
    """Sends that succeeded in one statement; failures and retries one by one."""
    mark_all_sent(conn, [o for o in outcomes if isinstance(o, Sent)])
    for outcome in outcomes:
        if not isinstance(outcome, Sent):
            outcome(conn)


class ChannelDispatcher:
    """Sends one channel's due messages, `concurrency` at a time, at its sender's pace."""

    def __init__(self, db: Database, channel: str, sender: Sender,
                 clock: Callable[[], datetime], *, instance: str, concurrency: int = 4,
                 batch: int = 20, idle: float = 1.0, window: Window = ALWAYS) -> None:
        self.db = db
        self.metrics: Metrics | None = None  # set by `Dispatcher` (figures for /metrics)
        self.window = window  # bulk rows leave only while it is open; replies any time
        self.channel = channel
        self.sender = sender
        self.clock = clock
        self.instance = instance
        rate = float(sender.rate)
        # A sender may ask for more sends at once than the default (Telegram's paid
        # broadcasts: 1,000 a second, each send and its record taking tens of ms).
        self.concurrency = max(concurrency, int(getattr(sender, "concurrency", 0)))
        self.batch = max(batch, self.concurrency,
                         min(MOST_CLAIMED, math.ceil(rate * CLAIM_SECONDS)))
        self.idle = idle
        self.wakeup = asyncio.Event()
        self._backlog: deque[OutboxItem] = deque()  # claimed, not yet being sent
        self.budget: Budget | None = shared_budget(
            db, channel, rate, backlog=lambda: len(self._backlog)) if rate else None
        # Replies may have a lower limit of their own (Telegram: 30/s for messages that are
        # not paid broadcasts), shared by every process too.
        reply_rate = float(getattr(sender, "reply_rate", 0.0))
        self.reply_budget: Budget | None = shared_budget(
            db, f"{channel}:replies", reply_rate) if reply_rate else None
        self._unrecorded: list[Outcome] = []  # outcomes the database refused: written later
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []  # to write next
        self._writer: asyncio.Task[None] | None = None
        self._sending = 0  # sends under way whose outcome is not written yet
        self._last_write = -math.inf  # loop.time() when the last write of outcomes began
        self._next_sweep = 0.0

    async def _claim(self, limit: int, *, replies_only: bool = False) -> list[OutboxItem]:
        now = self.clock()
        sweep = time.monotonic() >= self._next_sweep
        if sweep:
            self._next_sweep = time.monotonic() + CANCEL_EVERY

        def claim_due(conn: Connection) -> list[OutboxItem]:
            if sweep:
                cancel_stopped(conn, self.channel, now)
            return claim(conn, self.channel, self.instance, now, limit=limit,
                         bulk_ok=not replies_only and self.window.allows(now))

        return await self.db.run(claim_due)

    async def run_once(self) -> int:
        """Claim what is due now (one row per person) and send it; return how many."""
        await self._flush_unrecorded()
        items = await self._claim(self.batch)
        if not items:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: OutboxItem) -> None:
            async with gate:
                await self._send_and_record(item)

        await asyncio.gather(*(one(item) for item in items))
        return len(items)

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and send until `stopping` is set; then finish what is in flight.

        Rows are claimed a batch at a time (`batch`, one per person) and sent `concurrency`
        at a time; a row claimed and not yet started is not in flight: if the process stops
        or dies, it is given back and sent once.
        """
        backlog = self._backlog = deque()
        in_flight: set[asyncio.Task[None]] = set()
        stop_wait = asyncio.create_task(stopping.wait())
        woken = more = True
        try:
            while not stopping.is_set():
                await self._flush_unrecorded()
                held = len(backlog) + len(in_flight)
                low = held < self.batch and len(backlog) < self.concurrency
                reply_waiting = bool(backlog) and not backlog[0].reply.bulk
                # Claim when the backlog runs low, if new rows came (a wake-up, or the idle
                # timeout for retries) or the last claim left some behind: one claim per
                # batch, not one per message.
                if low and (woken or more):
                    self.wakeup.clear()
                    claimed = await self._claim(self.batch - held)
                    more = len(claimed) == self.batch - held
                    _line_up(backlog, claimed)
                elif woken and not reply_waiting:
                    # New rows while a bulk backlog drains (at 30/s a batch lasts most of a
                    # second): the replies among them go ahead of it, now.
                    self.wakeup.clear()
                    _line_up(backlog, await self._claim(self.concurrency, replies_only=True))
                while backlog and len(in_flight) < self.concurrency:
                    in_flight.add(asyncio.create_task(self._send_and_record(backlog.popleft())))
                # A finished send makes room; a wake-up means new rows (only worth waking for
                # when the next turn would claim them, or replies could jump the backlog);
                # idle: retries come due.
                waiting: set[asyncio.Task[Any]] = {stop_wait, *in_flight}
                wake = None
                low = len(backlog) + len(in_flight) < self.batch and \
                    len(backlog) < self.concurrency
                if low or not (backlog and not backlog[0].reply.bulk):
                    wake = asyncio.create_task(self.wakeup.wait())
                    waiting.add(wake)
                try:
                    done, _ = await asyncio.wait(waiting, timeout=self.idle,
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if wake is not None:
                        wake.cancel()
                woken = wake in done or not done  # a wake-up, or the idle timeout
                for task in done & in_flight:
                    in_flight.discard(task)
                    task.result()  # a failure to record is raised here (the loop restarts)
        finally:
            stop_wait.cancel()
            # Stopping (or restarting): what was claimed and not started goes back at once;
            # the sends under way finish and are recorded (if this task is cancelled
            # meanwhile, each gives its own claim back).
            if backlog:
                waiting_ids = [item.id for item in backlog]
                await asyncio.shield(self.db.run(
                    lambda conn: release_claims(conn, self.instance, waiting_ids)))
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _send_and_record(self, item: OutboxItem) -> None:
        """Send, then record; the slot stays taken until the outcome is written, so at most
        `concurrency` messages are ever sent and not recorded."""
        recorded = False
        self._sending += 1
        try:
            outcome = await self._deliver(item)
            try:
                await self._record(outcome)
            except Exception as exc:
                # Sent (or failed) but not written down: keep it, write it before claiming
                # more. The row stays claimed by this process meanwhile, so it is not resent.
                log.error("outbox.record_failed id=%s error=%s", item.id, error_summary(exc))
                self._unrecorded.append(outcome)
            recorded = True
        finally:
            self._sending -= 1
            if not recorded:  # cancelled before the provider answered: give the claim back
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.db.run(
                        lambda conn: release_claims(conn, self.instance, [item.id])))

    async def _record(self, outcome: Outcome) -> None:
        """Write `outcome`, in one transaction with those that ended meanwhile."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch: list[tuple[Outcome, asyncio.Future[None]]] = []
            try:
                # Others will end soon: theirs too. SQLite commits in this process, quickly
                # but on its CPU: each write waits RECORD_GATHER. A PostgreSQL write is a
                # round trip, mostly waiting: writes start at most every RECORD_GATHER, and
                # one that took longer waits no more (its 4-15 ms plus a full wait each time
                # held sends back: 96 % of 1,000/s instead of 99 %).
                since = self._last_write if self.db.dialect == "postgresql" else loop.time()
                wait = since + RECORD_GATHER - loop.time()
                if wait > 0 and self._sending > len(self._pending):
                    await asyncio.sleep(wait)
                self._last_write = loop.time()
                batch, self._pending = self._pending, []
                await self.db.run_grouped(partial(
                    write_outcomes, outcomes=[outcome for outcome, _ in batch]))
            except BaseException as exc:
                if not batch:  # stopped while gathering: what waited learns it
                    batch, self._pending = self._pending, []
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception)
                                           else RuntimeError("not recorded: stopping"))
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _flush_unrecorded(self) -> None:
        if self._unrecorded:  # raises while the database still refuses (the loop restarts)
            await self.db.run_grouped(partial(write_outcomes, outcomes=list(self._unrecorded)))
            self._unrecorded.clear()

    async def _deliver(self, item: OutboxItem) -> Outcome:
        """Send one message; return what to write about it."""
        units = self.sender.cost(item.reply)
        waiting = time.monotonic()
        if self.budget is not None:  # a reply takes the next slot, before bulk messages
            await self.budget.take(units, urgent=not item.reply.bulk)
        if self.reply_budget is not None and not item.reply.bulk:
            # The narrower limit last: its slot is when the reply leaves, so its spacing holds.
            await self.reply_budget.take(units, urgent=True)
        sending = time.monotonic()
        if self.metrics is not None and sending - waiting > 0.001:
            self.metrics.rate_waits.labels(self.channel).inc()
            self.metrics.rate_wait_seconds.labels(self.channel).inc(sending - waiting)
        try:
            result = await self.sender.send(item.address, item.reply)
            if self.budget is not None and item.reply.bulk:
                # How evenly sends arrive, the pace's margin (a reply may wait for its chat's
                # one second: not a measure of the provider's).
                self.budget.observe(time.monotonic() - sending)
        except TransientSendError as exc:
            reason, retry_after = exc.reason, exc.retry_after
            log.warning("outbox.retry id=%s reason=%s", item.id, mask_address(reason))
            self._count("retry", sending, throttled=retry_after is not None or "429" in reason)
            if retry_after is not None and self.budget is not None:
                # The provider's limit applies to the account (Telegram: the bot), not to
                # this message: the whole channel waits, in every process.
                await self.budget.pause(retry_after)
            return lambda conn: mark_retry(conn, item, reason, self.clock(), retry_after)
        except PermanentSendError as exc:
            reason, status = exc.reason, exc.participant_status
            log.warning("outbox.failed id=%s reason=%s status=%s", item.id,
                        mask_address(reason), status)
            self._count("failed", sending)

            def failed(conn: Connection) -> None:
                mark_failed(conn, item.id, reason, self.clock())
                if status is not None and item.participant_id is not None:
                    set_participant_status(conn, item.participant_id, status, self.clock())

            return failed
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The provider may have accepted it (an error while reading its answer): sending
            # again could make a duplicate, so this message is not retried.
            reason = mask_address(f"outcome unknown, not retried: {type(exc).__name__}: {exc}")
            log.exception("outbox.sender_error id=%s", item.id)
            self._count("failed", sending)
            return lambda conn: mark_failed(conn, item.id, reason, self.clock())
        self._count("sent", sending)
        return Sent(item.id, result.provider_id, self.clock())

    def _count(self, outcome: str, started: float, *, throttled: bool = False) -> None:
        if self.metrics is None:
            return
        self.metrics.outbound.labels(self.channel, outcome).inc()
        self.metrics.send_seconds.labels(self.channel).observe(time.monotonic() - started)
        if throttled:
            self.metrics.throttled.labels(self.channel).inc()


def _line_up(backlog: deque[OutboxItem], items: list[OutboxItem]) -> None:
    """Claimed rows join the backlog: replies behind the replies already waiting at its
    front, bulk messages at its end."""
    at = 0
    while at < len(backlog) and not backlog[at].reply.bulk:
        at += 1
    for item in items:
        if item.reply.bulk:
            backlog.append(item)
        else:
            backlog.insert(at, item)
            at += 1


class Dispatcher:
    """Every channel's dispatcher; `wake` after queueing, `drain` in tests and the console."""

    def __init__(self, db: Database, senders: Mapping[str, Sender],
                 clock: Callable[[], datetime], *, instance: str = "votz",
                 concurrency: int = 4, windows: Windows | None = None,
                 metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.windows = windows or Windows({})
        self.clock = clock
        self.instance = instance
        self.concurrency = concurrency
        self.channels: dict[str, ChannelDispatcher] = {}
        for channel, sender in senders.items():
            self.add_sender(channel, sender)

    @property
    def senders(self) -> dict[str, Sender]:
        return {name: c.sender for name, c in self.channels.items()}

    def add_sender(self, channel: str, sender: Sender) -> None:
        self.channels[channel] = ChannelDispatcher(
            self.db, channel, sender, self.clock, instance=self.instance,
            concurrency=self.concurrency, window=self.windows.of(channel))
        self.channels[channel].metrics = self.metrics

    def wake(self) -> None:
        for channel in self.channels.values():
            channel.wakeup.set()

    async def release_own_claims(self) -> int:
        """On start: claims this instance held when it last stopped (or died) go back."""
        released: int = await self.db.run(lambda conn: release_claims(conn, self.instance))
        if released:
            log.warning("outbox.claims_released instance=%s count=%d (in flight when the "
                        "process last stopped)", self.instance, released)
        return released

    async def run(self, stopping: asyncio.Event) -> None:
        """Every channel's loop until `stopping` is set, unsupervised (benchmarks; `votz run`
        supervises each loop on its own, see bot/server.py)."""
        await asyncio.gather(*(c.run(stopping) for c in self.channels.values()))

    async def run_once(self) -> int:
        counts = await asyncio.gather(*(c.run_once() for c in self.channels.values()))
        return sum(counts)

    async def drain(self) -> None:
        """Send everything due now (used by the console and tests)."""
        while await self.run_once():
            pass


__all__ = ["ChannelDispatcher", "Dispatcher", "OutboxStatus"]
