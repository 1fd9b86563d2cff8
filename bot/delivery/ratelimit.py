"""A channel's send budget, shared by every process sending on one database.

Providers limit a bot or an account, not a process: two `votz run` on one PostgreSQL
database must together stay under Telegram's 30 messages a second. The budget is a token
bucket kept in the channel's `send_budgets` row, in its "virtual scheduling" form (GCRA):
the row holds the bucket's level (`tokens`) at `updated_at`, and the level may fall below
zero — slots already handed out for the instants to come.

    reserve: one short transaction on the channel's row (locked on PostgreSQL; SQLite has
      │      one writer anyway): at most `AHEAD` seconds of slots, as many as are waiting
      └─> slots: instants 1/rate apart (more while several processes send), one
            │  sequence whichever process holds them
            └─> this process hands them out one unit per slot at its instant,
                replies first, then bulk messages, each class in order of arrival

Bound. Slots are at least 1/rate apart whoever holds them, rate being `PACE` (99.2 %) of the
provider's limit: `limit` slots span 1/PACE s, 8 ms more than the second a strict provider
counts them in (room for the jitter of the network and of a busy machine). An idle bucket
holds `BURST`, one unit. One process hands a unit out at its slot or up to `LATE` after it
(a slot found later is dropped), never closer than 1/rate less `TOLERANCE` to its previous
unit, and never sooner than 1 s + `GUARD` (more when its sends take unevenly long, see
`MOST_GUARD`) after the unit `limit` places before it: however late some units were,
`limit` + 1 of its units never fit in 1 s + GUARD, so never more than
the limit in any second (30 at 30/s, 1,000 at 1,000/s). (The spacing of pairs alone did not
ensure it: a unit 10 ms late, then 30 units later one on time, put 31 within 1,000 ms of
the pace of 99 %; measured at a strict fake, a 429 and a second's pause each time.)
Several processes: each unit goes within `LATE` after its
slot, and slots are instants of the wall clock, read while the row is locked: processes on
one machine share it, machines agree on it to within ε (NTP keeps servers within a few
milliseconds; a machine whose clock runs ahead by more may go over the limit by that much).
No process knows when the others' units really left, so the window rule above cannot span
them; the slots do instead. While several processes reserve on a channel (another one
reserved within `SHARED_SEEN` of this one, and `SHARED_LINGER` after), each slot costs
`cost` = PACE·(1 + LATE + D + `SHARED_MARGIN`) units rather than one, D being the largest
guard the processes reported lately (each reservation writes its own if larger; the row
keeps the largest `SHARED_LINGER` seconds, then forgets it at `SPREAD_DECAY`): `limit` + 1
consecutive slots then span 1 s + LATE + D + the margin, so however late (up to LATE) and
however unevenly (up to D) their units arrive, never more than the limit in any second.
The reservation that finds a second process leaves a gap of as much before its first
slot: the slots given before it, up to a second's worth, were spaced for one process.
D is each process's own spread: processes whose sends take different times at their base
(other machines, other networks) may arrive less evenly than that. A process of a version
before this rule (migration 0007) does not name itself in the row: stop them all before
starting the new one. The pace is then PACE/cost of the limit
(98.4 % with the smallest guard; measured at 1,000/s with two processes on one 2-core
machine, see the README). With slots 1/rate apart instead, the jitter after a handout came
on top: two processes at 1,000/s got six 429s in 20 s. (The database's own clock would
spare the assumption on ε, but a process can only map it onto its own to within a round
trip, and a busy database makes those tens of milliseconds: measured, 32 ms between two
processes while the database counted a 500,000-row broadcast.)

Latency. A reservation asks for the units waiting and lined up in this process, at most
`AHEAD` (a quarter of a second) ahead of the last slot anyone holds: a steady drain costs
one short transaction per process every eighth of a second. A reply takes the next slot
this process holds, before any bulk message; it waits behind another process's slots at
most `AHEAD`. A provider's 429 with `retry_after` (Telegram's applies to the whole bot)
pauses the channel in every process: the row's level is pushed back so that no slot falls
before the pause ends; another process may still use the few slots it held (at most
AHEAD/2 of them, and one).

`LocalLevel` keeps the same bucket in memory, for one process alone (tests and benches).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection, select, update

from bot.store.db import Database
from bot.store.repo import insert_for
from bot.store.tables import send_budgets

log = logging.getLogger("votz.ratelimit")

BURST = 1.0  # units an idle channel may send at once: one, so an idle channel never bursts
AHEAD = 0.25  # seconds of slots one reservation may reach ahead of now (all processes)
# Seconds after its instant a slot may still be used; later, it is dropped. Under the pace's
# margin (8 ms), so that several processes together stay under the limit (at 10 ms, with the
# pace at 99.2 %, 31 in a second could happen at 30/s).
LATE = 0.008
# A process hands its slots out no closer than 1/rate apart, give or take this much (a busy
# event loop's turn: at 1,000/s, 2 ms instead of 5 cost a fifth of the pace): its own sends
# never bunch up, whatever the mapping of the database's clock onto its own, and time it
# lost (busy, or not scheduled) is not caught up.
TOLERANCE = 0.005
# The long-run pace, as a share of the provider's limit: `limit` units span 1/PACE s, 8 ms
# more than the second a strict provider counts them in (at 0.99, 10 ms: with nothing lost,
# the pace was exactly 99 % of the limit, and anything lost put it under).
PACE = 0.992
# However late some of its handouts were, one process's `limit` consecutive units span at
# least 1 s plus this (of the 8 ms: 2 ms of a late moment may be caught up each second, 6 ms
# are left for the jitter between a handout here and its arrival at the provider: measured
# on a loaded 2-core machine, 1.4 ms typically, 5-6 ms at the 99th percentile, 7-10 at most).
GUARD = 0.006
# More when the sends of this process arrive less evenly than that: the spread (longest less
# shortest) of the time its last `limit` sends took, from handout to the provider's answer
# (a second's worth: what one window of the provider holds), up to this. At 1,000/s on a busy
# 2-core machine it reached 20-35 ms (a 429, and a second's pause, every few seconds with a
# fixed 6 ms); at 30/s it stays near 6 ms, higher for a second after a slow send.
MOST_GUARD = 0.04
# Several processes count as sending on a channel while another one than this reserved
# within SHARED_SEEN seconds before it (a sending process reserves every eighth of a second;
# its slots reach AHEAD and a lead beyond its reservation, and one second of them counts),
# and SHARED_LINGER seconds after. The largest spread reported holds SHARED_LINGER seconds,
# then is forgotten at SPREAD_DECAY seconds a second (MOST_GUARD in 4 s more: a process that
# stopped no longer slows the others).
SHARED_SEEN = 1.5
SHARED_LINGER = 2.0
SPREAD_DECAY = 0.01
# On top, while several send: rounding, and clocks of machines a little apart.
SHARED_MARGIN = 0.002
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # a new row: the bucket is full


# --- the bucket, pure -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    """The bucket at instant `at` (seconds): `tokens` units may go at once; below zero,
    that many slots are already handed out ahead of `at`."""

    tokens: float
    at: float


def grant(level: Level, *, want: int, now: float, rate: float, burst: float = BURST,
          ahead: float = AHEAD, cost: float = 1.0, gap: float = 0.0
          ) -> tuple[Level, list[float]]:
    """Slots for up to `want` units (at least one): seconds from `now`, `cost`/rate apart
    (each unit costing `cost` tokens, one or more), the first `gap` seconds later than it
    would be, none further than `ahead` but the first; and the bucket's level after them."""
    start = max(now, level.at)  # another clock ran ahead: never refill backwards
    tokens = min(burst, level.tokens + (start - level.at) * rate) - gap * rate
    count = max(1, min(want, math.floor((tokens + ahead * rate - 1) / cost + 1e-9) + 1))
    slots = [start - now + max(0.0, ((n - 1) * cost + 1 - tokens) / rate)
             for n in range(1, count + 1)]
    return Level(tokens - count * cost, start), slots


def shared_cost(pace: float, spread: float) -> float:
    """What a slot costs while several processes send (see "Several processes" above): with
    `pace` the rate's share of the limit, `limit` + 1 slots span 1 s + LATE + `spread` +
    SHARED_MARGIN."""
    return max(1.0, pace * (1.0 + LATE + spread + SHARED_MARGIN))


def paused(level: Level, *, seconds: float, now: float, rate: float,
           burst: float = BURST) -> Level:
    """The level after a provider asked to wait `seconds`: the next slot is no sooner."""
    start = max(now, level.at)
    tokens = min(burst, level.tokens + (start - level.at) * rate)
    return Level(min(tokens, 1.0 - seconds * rate), start)


# --- where the level lives ----------------------------------------------------------------


class LevelStore(Protocol):
    """Keeps one channel's level; hands out slots and applies pauses.

    `reserve` returns its `clock` at the reservation and the slots, in seconds after it.
    """

    clock: Callable[[], float]

    async def reserve(self, want: int, *, lead: float = 0.0,
                      spread: float = 0.0) -> tuple[float, list[float]]:
        ...

    async def pause(self, seconds: float) -> None: ...


class LocalLevel:
    """The bucket in this process's memory: for a process that sends alone."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.level = Level(BURST, clock())

    async def reserve(self, want: int, *, lead: float = 0.0,
                      spread: float = 0.0) -> tuple[float, list[float]]:
        now = self.clock()
        self.level, slots = grant(self.level, want=want, now=now + lead, rate=self.rate)
        return now, [lead + slot for slot in slots]

    async def pause(self, seconds: float) -> None:
        self.level = paused(self.level, seconds=seconds, now=self.clock(), rate=self.rate)


@dataclass(frozen=True, slots=True)
class _Row:
    """A channel's `send_budgets` row (instants in seconds of the wall clock)."""

    level: Level
    holder: str | None
    shared_until: float
    spread: float
    spread_at: float


def _locked_row(conn: Connection, channel: str,
                clock: Callable[[], float] = time.time) -> tuple[_Row, float]:
    """The channel's row, locked until the transaction ends, and the wall clock once the
    lock is held (a wait for it is not counted as refill)."""
    postgres = conn.dialect.name == "postgresql"
    query = select(send_budgets).where(send_budgets.c.channel == channel)
    if postgres:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        conn.execute(insert_for(conn, send_budgets).values(
            channel=channel, tokens=BURST, updated_at=_LONG_AGO).on_conflict_do_nothing())
        row = conn.execute(query).one()
    shared = row.shared_until.timestamp() if row.shared_until is not None else 0.0
    spread_at = row.spread_at.timestamp() if row.spread_at is not None else 0.0
    return _Row(Level(float(row.tokens), row.updated_at.timestamp()), row.holder, shared,
                float(row.spread), spread_at), clock()


def _store(conn: Connection, channel: str, level: Level, **extra: object) -> None:
    conn.execute(update(send_budgets).where(send_budgets.c.channel == channel).values(
        tokens=level.tokens, updated_at=datetime.fromtimestamp(level.at, UTC), **extra))


def reserve_slots(conn: Connection, channel: str, *, want: int, rate: float, holder: str,
                  lead: float = 0.0, spread: float = 0.0, pace: float = PACE,
                  clock: Callable[[], float] = time.time) -> tuple[float, list[float]]:
    """Up to `want` slots of `channel` (at least one), none sooner than `lead` seconds from
    now (the time the answer takes to reach the process): the database's clock now, and
    the slots in seconds after it.

    `holder` names the process asking, `spread` is its guard; `pace` is `rate`'s share of
    the provider's limit. While another process reserves too, slots are spaced wider
    (`shared_cost`), and the first of them leaves a gap after the slots given before."""
    row, now = _locked_row(conn, channel, clock)
    was_shared = row.shared_until > now
    shared_until = row.shared_until
    if row.holder is not None and row.holder != holder and now - row.level.at < SHARED_SEEN:
        shared_until = max(shared_until, now + SHARED_LINGER)
    held = max(0.0, now - row.spread_at - SHARED_LINGER)  # the largest one holds a while
    stored = max(0.0, row.spread - held * SPREAD_DECAY)
    largest = max(spread, stored)
    kept = (spread, now) if spread >= stored else (row.spread, row.spread_at)
    cost, gap = 1.0, 0.0
    if shared_until > now:
        cost = shared_cost(pace, largest)
        if not was_shared:  # the slots before were spaced for one process
            gap = LATE + largest + SHARED_MARGIN
    level, slots = grant(row.level, want=want, now=now + lead, rate=rate, cost=cost, gap=gap)
    _store(conn, channel, level, holder=holder[:16], spread=kept[0],
           spread_at=datetime.fromtimestamp(kept[1], UTC),
           shared_until=datetime.fromtimestamp(shared_until, UTC) if shared_until else None)
    return now, [lead + slot for slot in slots]


def pause_channel(conn: Connection, channel: str, *, seconds: float, rate: float,
                  clock: Callable[[], float] = time.time) -> None:
    """No slot of `channel` before `seconds` from now, in any process."""
    row, now = _locked_row(conn, channel, clock)
    _store(conn, channel, paused(row.level, seconds=seconds, now=now, rate=rate))


class SharedLevel:
    """The bucket in the channel's `send_budgets` row: shared by every process on `db`."""

    def __init__(self, db: Database, channel: str, rate: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # the wall clock: every process's slots are instants of it
        self.db = db
        self.channel = channel
        self.rate = rate
        self.name = secrets.token_hex(8)  # this process, in the row: 16 characters

    async def reserve(self, want: int, *, lead: float = 0.0,
                      spread: float = 0.0) -> tuple[float, list[float]]:
        return await self.db.run(lambda conn: reserve_slots(
            conn, self.channel, want=want, rate=self.rate, lead=lead, holder=self.name,
            spread=spread, clock=self.clock))

    async def pause(self, seconds: float) -> None:
        await self.db.run(lambda conn: pause_channel(
            conn, self.channel, seconds=seconds, rate=self.rate, clock=self.clock))


# --- handing slots out in this process ------------------------------------------------------


@dataclass(slots=True)
class _Waiter:
    units: int  # still to get
    done: asyncio.Future[None]


class Budget:
    """One channel's pace in this process: each unit waits for a slot of the shared
    bucket; a reply gets the next slot before any bulk message.

    `backlog()` says how many more units this process has lined up (claimed, not yet
    waiting): a reservation takes slots for them too, up to `AHEAD` seconds' worth, so a
    steady drain costs one short transaction per process every eighth of a second or so.
    """

    def __init__(self, store: LevelStore, rate: float, *,
                 backlog: Callable[[], int] = lambda: 0, limit: float | None = None) -> None:
        self.store = store
        self.rate = rate
        self.backlog = backlog
        # The provider's limit, units a second: this process never hands out more than that
        # many within 1 s + GUARD, however late some handouts were (a late unit followed,
        # a second later, by one on time is how a strict provider counts one too many).
        within = math.floor((limit if limit is not None else rate / PACE) + 1e-9)
        self._recent: deque[float] = deque(maxlen=max(1, within))  # last handouts, loop.time()
        self.guard = GUARD
        self._took: deque[float] = deque(maxlen=max(8, within))  # how long the last sends took
        self._observed = 0
        self.most = max(1, math.ceil(rate * AHEAD))  # slots one reservation asks for
        self._slots: deque[float] = deque()  # loop.time() of the slots held, in order
        self._waiters: list[tuple[int, int, _Waiter]] = []  # (class, arrival, waiter)
        self._arrivals = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self._reserving: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._paused_until = 0.0  # loop.time()
        self._epoch = 0  # a pause makes the reservations under way stale
        self._trips: deque[float] = deque(maxlen=8)  # how long the last reservations took
        self._last = -math.inf  # loop.time() of the last slot held or handed out
        self._tat = 0.0  # loop.time() of this process's next unit, at 1/rate from the last
        self._wake = asyncio.Event()
        self.dropped = 0  # slots unused in time (idle, or this process was too busy)

    async def take(self, units: int, *, urgent: bool = False) -> None:
        """Wait until `units` slots came (each at its instant); `urgent` for replies."""
        if units <= 0:
            return
        waiter = _Waiter(units, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiters, (0 if urgent else 1, next(self._arrivals), waiter))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._drive())
        else:
            self._wake.set()  # it may be idle, waiting for a reservation it no longer needs
        await waiter.done

    def observe(self, seconds: float) -> None:
        """A send took `seconds` from its handout to the provider's answer: the guard follows
        how unevenly sends arrive (see MOST_GUARD)."""
        self._took.append(seconds)
        self._observed += 1
        if self._observed % max(1, len(self._took) // 8) == 0:
            spread = max(self._took) - min(self._took)
            self.guard = min(MOST_GUARD, max(GUARD, spread))

    async def pause(self, seconds: float) -> None:
        """The provider asked to wait: no slot here before `seconds` from now, nor (through
        the shared row) in any other process once its current slots are spent."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)
        self._epoch += 1
        self._slots.clear()
        self._wake.set()
        log.warning("dispatcher.paused seconds=%g", seconds)
        try:
            await self.store.pause(seconds)
        except Exception as exc:  # this process is paused anyway; the others learn later
            log.error("dispatcher.pause_not_shared error=%s: %s", type(exc).__name__, exc)

    def _head(self) -> _Waiter | None:
        while self._waiters and self._waiters[0][2].done.done():  # cancelled meanwhile
            heapq.heappop(self._waiters)
        return self._waiters[0][2] if self._waiters else None

    def _demand(self) -> int:
        return sum(w.units for _, _, w in self._waiters if not w.done.done()) + self.backlog()

    def _prefetch(self, now: float) -> None:
        """Reserve more before the slots held run out (one reservation at a time)."""
        if self._reserving is not None or now < self._paused_until:
            return
        missing = self._demand() - len(self._slots)
        if missing <= 0 or (self._slots and self._slots[-1] - now > AHEAD / 2):
            return
        self._reserving = asyncio.create_task(self._reserve(min(self.most, missing)))

    async def _reserve(self, want: int) -> None:
        epoch = self._epoch
        loop = asyncio.get_running_loop()
        sent = loop.time()
        # Slots that would have passed by the time they arrive are asked for a little later.
        lead = min(max(self._trips, default=0.0), AHEAD / 2)
        try:
            now, delays = await self.store.reserve(want, lead=lead, spread=self.guard)
        except Exception as exc:
            self._failure = exc
        else:
            received = loop.time()
            self._trips.append(received - sent)
            # The store's instants on this loop's clock (both read now: exact, however long
            # the round trip took); never closer than 1/rate to the slots held before them.
            base = now - (self.store.clock() - received)
            if epoch == self._epoch:  # not stale: no pause came meanwhile
                shift = max(0.0, self._last + 1.0 / self.rate - (base + delays[0]))
                self._slots.extend(base + shift + delay for delay in delays)
                self._last = self._slots[-1]
        finally:
            self._reserving = None
            self._wake.set()

    async def _drive(self) -> None:
        """Hand each slot, at its instant, to the first waiter; stop when none is left."""
        try:
            await self._hand_out()
        except BaseException as exc:  # never leave a waiter waiting for a dead driver
            for _, _, waiter in self._waiters:
                if not waiter.done.done():
                    waiter.done.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            self._waiters.clear()
            raise

    async def _hand_out(self) -> None:
        loop = asyncio.get_running_loop()
        while (head := self._head()) is not None:
            if self._failure is not None:  # the database refused: every waiter learns it
                failure, self._failure = self._failure, None
                for _, _, waiter in self._waiters:
                    if not waiter.done.done():
                        waiter.done.set_exception(failure)
                self._waiters.clear()
                return
            now = loop.time()
            while self._slots and (self._slots[0] < now - LATE
                                   or self._slots[0] < self._paused_until):
                self._slots.popleft()
                self.dropped += 1
            ready = max(self._slots[0], self._tat - TOLERANCE) if self._slots else None
            if ready is not None and len(self._recent) == self._recent.maxlen:
                ready = max(ready, self._recent[0] + 1.0 + self.guard)
            if ready is not None and ready <= now:
                self._slots.popleft()
                self._tat = max(self._tat, now) + 1.0 / self.rate
                self._recent.append(now)
                head.units -= 1
                if head.units == 0:
                    heapq.heappop(self._waiters)
                    head.done.set_result(None)
                continue
            self._wake.clear()
            self._prefetch(now)
            if ready is not None:
                delay: float | None = ready - now
            elif self._reserving is None:  # paused: nothing to reserve before it ends
                delay = max(0.0, self._paused_until - now)
            else:
                delay = None  # the reservation under way wakes us
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass


def shared_budget(db: Database, channel: str, limit: float, *,
                  backlog: Callable[[], int] = lambda: 0) -> Budget:
    """`channel`'s budget at its provider's `limit` (units a second, `PACE` of it in the long
    run), shared through `db` with every process sending on that channel."""
    rate = limit * PACE
    return Budget(SharedLevel(db, channel, rate), rate, backlog=backlog, limit=limit)
