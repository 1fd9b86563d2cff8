"""The scheduler of `votz run`: APScheduler's `AsyncIOScheduler` ticks campaign events into
the outbox and keeps the conversation's catalog current.

Jobs:
- `tick`, every `VOTZ_SCHEDULER_SECONDS` (30 s), and once more at the exact instant of the
  next event or phase change (a `date` job moved after each tick): fires due events, nudges
  unfinished ballots, refreshes the catalog when a phase changed, wakes the dispatcher;
- `catalog`, every 30 s: campaigns loaded or moderated by another process show up.

The scheduler holds no state of its own: what is due is in `campaign_events`, what was sent
in the outbox, with idempotency keys. Stopping it at any moment, running two, or replaying a
tick never sends a message twice. Tests call `tick()` with an injected clock, never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.delivery.windows import Windows, windows_from_settings
from bot.domain.campaigns import Campaign
from bot.domain.region import PARIS
from bot.scheduling.events import (
    Fired,
    due_now,
    fire_next,
    next_due,
    nudge_unfinished,
    plan_unplanned,
)
from bot.staff.broadcasts import next_scheduled, queue_due

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("votz.scheduler")
CATALOG_REFRESH_SECONDS = 30.0
SHUTDOWN_WAIT = 10.0  # seconds a tick under way may take to end when votz run stops


@dataclass(frozen=True, slots=True)
class Tick:
    at: datetime
    fired: tuple[Fired, ...] = ()
    nudged: int = 0
    phase_changed: bool = False
    failed: tuple[str, ...] = ()  # events that could not be fired (tried again next tick)
    broadcasts: tuple[int, ...] = ()  # scheduled staff broadcasts queued


@dataclass
class SchedulerState:
    started: float = field(default_factory=time.monotonic)
    last_tick: datetime | None = None  # the clock's time of the last tick that completed
    last_tick_monotonic: float | None = None
    last_error: str | None = None
    failing_since: float | None = None  # monotonic time of the first failed tick in a row
    ticks: int = 0


def boundaries(campaigns: Sequence[Campaign]) -> list[datetime]:
    """Every instant a campaign's phase changes."""
    found = set()
    for campaign in campaigns:
        for window in campaign.phases:
            found.add(window.start)
            if window.end is not None:
                found.add(window.end)
    return sorted(found)


class Scheduler:
    def __init__(self, app: App, *, windows: Windows | None = None) -> None:
        settings = app.settings
        self.app = app
        self.windows = windows or windows_from_settings(settings)
        self.grace = timedelta(hours=settings.reminder_grace_hours)
        self.interval = settings.scheduler_seconds
        self.monotonic = time.monotonic
        self.state = SchedulerState(started=self.monotonic())
        self._lock = asyncio.Lock()
        self._previous: datetime | None = None
        self._jobs: set[asyncio.Task[Any]] = set()  # APScheduler's runs of ours under way

    async def tick(self) -> Tick:
        """Fire what is due now (each event in its own transaction), nudge unfinished
        ballots, refresh the catalog if a phase changed since the last tick."""
        async with self._lock:
            app = self.app
            now = app.clock()
            planned = await app.db.run(lambda conn: plan_unplanned(conn, now, grace=self.grace))
            if planned:
                log.info("scheduler.planned campaigns=%s (loaded before events existed)",
                         ",".join(planned))
            # As the conversation sees them (the catalog job keeps them current): each event
            # re-reads its own campaign when it fires.
            campaigns = {c.id: c for c in app.pipeline.catalog.campaigns}
            fired: list[Fired] = []
            failed: dict[int, str] = {}  # event row → error: the others still go out
            while True:
                def fire(conn):  # type: ignore[no-untyped-def]
                    return fire_next(conn, now, i18n=app.i18n, windows=self.windows,
                                     grace=self.grace, skip=frozenset(failed))

                try:
                    done: Fired | None = await app.db.run(fire)
                except Exception as exc:
                    failing = await app.db.run(lambda conn: due_now(conn, now, failed))
                    if failing is None:
                        raise  # not one event's fault (the database itself)
                    failed[failing] = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("scheduler.event_failed event_row=%s", failing)
                    continue
                if done is None:
                    break
                fired.append(done)

            broadcast = await self._queue_broadcasts(now)

            def nudge(conn):  # type: ignore[no-untyped-def]
                return sum(nudge_unfinished(conn, c, now, i18n=app.i18n, windows=self.windows)
                           for c in campaigns.values())

            nudged: int = await app.db.run(nudge)
            previous, self._previous = self._previous, now
            changed = previous is None or any(previous < b <= now for b in
                                              boundaries(list(campaigns.values())))
            if changed or fired:
                await app.refresh_catalog()
            self.app.metrics.bulk_queued.labels("reminder").inc(sum(f.queued for f in fired))
            self.app.metrics.bulk_queued.labels("nudge").inc(nudged)
            if nudged or broadcast or any(f.queued for f in fired):
                app.dispatcher.wake()
            self.state.last_tick = now
            self.state.last_tick_monotonic = self.monotonic()
            self.state.ticks += 1
            return Tick(now, tuple(fired), nudged, changed, tuple(failed.values()), broadcast)

    async def _queue_broadcasts(self, now: datetime) -> tuple[int, ...]:
        """Staff broadcasts whose send time has come, each queued in its own transaction."""
        queued: list[int] = []
        while True:
            found: tuple[int, int] | None = await self.app.db.run(lambda conn: queue_due(
                conn, now, i18n=self.app.i18n, windows=self.windows))
            if found is None:
                return tuple(queued)
            log.info("scheduler.broadcast_queued broadcast=%s messages=%s", *found)
            self.app.metrics.bulk_queued.labels("broadcast").inc(found[1])
            queued.append(found[0])

    async def next_moment(self) -> datetime | None:
        """The next event due or phase change after now (for the exact-time job); phases
        are read from the catalog the tick keeps current."""
        now = self.app.clock()
        due = await self.app.db.run(lambda conn: next_due(conn, now))
        scheduled = await self.app.db.run(lambda conn: next_scheduled(conn, now))
        later = [b for b in boundaries(self.app.pipeline.catalog.campaigns) if b > now]
        candidates = [m for m in (due, scheduled, min(later, default=None)) if m is not None]
        return min(candidates, default=None)

    def health(self) -> list[str]:
        """Problems in words: ticks have failed for a while (a database locked for a few
        seconds is not one), or none completed for too long."""
        state = self.state
        problems = []
        now = self.monotonic()
        patience = max(60.0, 2 * self.interval)
        if state.last_error and state.failing_since is not None \
                and now - state.failing_since > patience:
            problems.append(f"scheduler: ticks failing for {now - state.failing_since:.0f} s, "
                            f"the last one: {state.last_error}")
        since = state.last_tick_monotonic or state.started
        allowed = 3 * self.interval + 60
        if now - since > allowed:
            what = (f"last tick at {state.last_tick.isoformat()}" if state.last_tick
                    else "no tick yet")
            problems.append(f"scheduler: {what} (expected every {self.interval:g} s)")
        return problems

    async def _job(self) -> None:
        """One APScheduler run: a tick, then the exact-time job moved to the next moment."""
        self._track()
        try:
            tick = await self.tick()
            if tick.failed:
                raise RuntimeError(f"{len(tick.failed)} event(s) failed: {tick.failed[0]}")
            self.state.last_error = None
            self.state.failing_since = None
            if tick.nudged:
                log.info("scheduler.nudged count=%d", tick.nudged)
            moment = await self.next_moment()
        except Exception as exc:
            self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if self.state.failing_since is None:
                self.state.failing_since = self.monotonic()
            log.exception("scheduler.tick_failed")
            return
        scheduler = self._scheduler
        if moment is not None and scheduler is not None:
            wait = (moment - self.app.clock()).total_seconds()
            if 0 < wait <= self.interval:
                scheduler.add_job(self._job, "date", id="exact", replace_existing=True,
                                  run_date=datetime.now(PARIS) + timedelta(seconds=wait + 0.05),
                                  misfire_grace_time=None)

    async def _refresh(self) -> None:
        self._track()
        try:
            await self.app.refresh_catalog()
        except Exception:
            log.exception("scheduler.catalog_refresh_failed")

    _scheduler: Any = None  # APScheduler's, while `run` runs

    def _track(self) -> None:
        """Remember the task running this job, so that stopping lets it finish."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    async def _finish_jobs(self, timeout: float = SHUTDOWN_WAIT) -> None:
        """Let a tick under way end (its transaction commits or rolls back by itself) before
        APScheduler's shutdown, which would cancel it and log the cancellation as an error."""
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=timeout)

    async def run(self, stopping: asyncio.Event) -> None:
        """APScheduler with the jobs above, until `stopping` is set (a supervised loop)."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        await asyncio.to_thread(self.windows.warm, self.app.clock())  # not on the event loop
        scheduler = AsyncIOScheduler(timezone=PARIS)
        scheduler.add_job(self._job, "interval", seconds=self.interval, id="tick",
                          next_run_time=datetime.now(PARIS), coalesce=True, max_instances=1,
                          misfire_grace_time=None)
        scheduler.add_job(self._refresh, "interval", seconds=CATALOG_REFRESH_SECONDS,
                          id="catalog", coalesce=True, max_instances=1, misfire_grace_time=None)
        self._scheduler = scheduler
        scheduler.start()
        log.info("scheduler.started every=%gs grace=%s", self.interval, self.grace)
        try:
            await stopping.wait()
        finally:
            scheduler.pause()  # no new run; one under way may end
            try:
                await self._finish_jobs()
            finally:
                scheduler.shutdown(wait=False)
                self._scheduler = None
