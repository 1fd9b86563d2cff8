"""The dispatcher: claims due outbox rows and hands them to each channel's sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Connection

from bot.channels.base import PermanentSendError, Sender, TransientSendError
from bot.delivery.outbox import (
    OutboxItem,
    OutboxStatus,
    claim,
    mark_all_sent,
    mark_failed,
    mark_retry,
)
from bot.delivery.ratelimit import TokenBucket
from bot.store.db import Database
from bot.store.repo import set_participant_status

log = logging.getLogger("votz.dispatcher")
Outcome = Callable[[Connection], object]


class Dispatcher:
    """Sends due messages: one person's in order, different people concurrently.

    A sender may declare `rate` (units per second) and `cost(reply)` (units, e.g. SMS
    segments); the dispatcher then keeps to that rate with a token bucket.
    """

    def __init__(self, db: Database, senders: Mapping[str, Sender],
                 clock: Callable[[], datetime], *, batch: int = 20,
                 concurrency: int = 4) -> None:
        self.db = db
        self.senders = dict(senders)
        self.clock = clock
        self.batch = batch
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._buckets: dict[str, TokenBucket] = {}

    def add_sender(self, channel: str, sender: Sender) -> None:
        self.senders[channel] = sender

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Send one batch of due messages; return how many were claimed."""
        channels = list(self.senders)
        now = self.clock()
        items = await self.db.run(lambda conn: claim(conn, channels, now, limit=self.batch))
        if not items:
            return 0
        groups: dict[tuple[str, str], list[OutboxItem]] = defaultdict(list)
        for item in items:
            groups[(item.channel, item.address)].append(item)
        gate = asyncio.Semaphore(self.concurrency)
        outcomes: list[Outcome] = []
        sent: list[tuple[int, str | None]] = []

        async def in_order(group: list[OutboxItem]) -> None:
            async with gate:
                for one in group:
                    outcome = await self._deliver(one)
                    if isinstance(outcome, tuple):
                        sent.append(outcome)
                    else:
                        outcomes.append(outcome)

        await asyncio.gather(*(in_order(group) for group in groups.values()))
        done = self.clock()

        def record(conn: Connection) -> None:
            mark_all_sent(conn, sent, done)
            for outcome in outcomes:
                outcome(conn)

        # One transaction for the whole batch's results.
        await self.db.run(record)
        return len(items)

    async def _throttle(self, sender: Sender, item: OutboxItem) -> None:
        if not sender.rate:
            return
        bucket = self._buckets.get(item.channel)
        if bucket is None:
            bucket = self._buckets[item.channel] = TokenBucket(float(sender.rate))
        await bucket.take(sender.cost(item.reply))

    async def _deliver(self, item: OutboxItem) -> Outcome | tuple[int, str | None]:
        """Send one message; return (id, provider id) when sent, else what to record."""
        sender = self.senders[item.channel]
        await self._throttle(sender, item)
        try:
            result = await sender.send(item.address, item.reply)
        except TransientSendError as exc:
            reason, retry_after = exc.reason, exc.retry_after
            log.warning("outbox.retry id=%s reason=%s", item.id, reason)
            return lambda conn: mark_retry(conn, item, reason, self.clock(), retry_after)
        except PermanentSendError as exc:
            reason, status = exc.reason, exc.participant_status
            log.warning("outbox.failed id=%s reason=%s status=%s", item.id, reason, status)

            def failed(conn: Connection) -> None:
                mark_failed(conn, item.id, reason, self.clock())
                if status is not None and item.participant_id is not None:
                    set_participant_status(conn, item.participant_id, status)

            return failed
        except Exception as exc:  # a bug in a sender must not lose the message
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("outbox.sender_error id=%s", item.id)
            return lambda conn: mark_retry(conn, item, reason, self.clock())
        return (item.id, result.provider_id)

    async def drain(self) -> None:
        """Send everything due now (used by the console and tests)."""
        while await self.run_once():
            pass

    async def run(self, stop: asyncio.Event, *, idle: float = 1.0) -> None:
        while not stop.is_set():
            while await self.run_once():
                pass
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle)


__all__ = ["Dispatcher", "OutboxStatus"]
