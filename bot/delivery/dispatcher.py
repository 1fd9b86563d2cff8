"""The dispatcher: claims due outbox rows and hands them to each channel's sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from bot.channels.base import PermanentSendError, Sender, TransientSendError
from bot.delivery.outbox import (
    OutboxItem,
    OutboxStatus,
    claim,
    mark_failed,
    mark_retry,
    mark_sent,
)
from bot.store.db import Database

log = logging.getLogger("votz.dispatcher")


class Dispatcher:
    def __init__(self, db: Database, senders: Mapping[str, Sender],
                 clock: Callable[[], datetime], *, batch: int = 50) -> None:
        self.db = db
        self.senders = dict(senders)
        self.clock = clock
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Send one batch of due messages; return how many were claimed."""
        channels = list(self.senders)
        now = self.clock()
        items = await self.db.run(lambda conn: claim(conn, channels, now, limit=self.batch))
        for item in items:
            await self._deliver(item)
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        sender = self.senders[item.channel]
        try:
            result = await sender.send(item.address, item.reply)
        except TransientSendError as exc:
            reason, retry_after = exc.reason, exc.retry_after
            status = await self.db.run(
                lambda conn: mark_retry(conn, item, reason, self.clock(), retry_after))
            log.warning("outbox.retry id=%s reason=%s status=%s", item.id, reason, status.value)
        except PermanentSendError as exc:
            reason = exc.reason
            await self.db.run(lambda conn: mark_failed(conn, item.id, reason, self.clock()))
            log.warning("outbox.failed id=%s reason=%s", item.id, reason)
        except Exception as exc:  # a bug in a sender must not lose the message
            reason = f"{type(exc).__name__}: {exc}"
            await self.db.run(lambda conn: mark_retry(conn, item, reason, self.clock()))
            log.exception("outbox.sender_error id=%s", item.id)
        else:
            provider_id = result.provider_id
            await self.db.run(lambda conn: mark_sent(conn, item.id, provider_id, self.clock()))

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
