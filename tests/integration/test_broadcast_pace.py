"""What keeps a large broadcast at the channel's pace (#12's bench targets), on SQLite and
PostgreSQL: a broadcast's progress read from counts kept on its row (migration 0006's
triggers) that match its outbox rows exactly whatever path changed them; the sweep for
people who stopped walks the few who stopped, not the queue; the pace's bounds."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import Any

from sqlalchemy import Connection, func, select, text, update

from bot.app import App
from bot.channels.base import DeliveryReport, DeliveryState
from bot.delivery import outbox as box
from bot.delivery.ratelimit import GUARD, LATE, MOST_GUARD, PACE, Budget, LocalLevel
from bot.domain.participants import Status
from bot.staff import broadcasts
from bot.store.repo import erase_participant, set_participant_status
from bot.store.tables import outbox, participants
from tests.integration.reminders import add_person


async def actual(app: App, broadcast_id: int) -> dict[str, int]:
    rows = await app.db.run(lambda conn: conn.execute(
        select(outbox.c.status, func.count()).where(outbox.c.broadcast_id == broadcast_id)
        .group_by(outbox.c.status)).all())
    return {status: n for status, n in rows}


async def kept(app: App, broadcast_id: int) -> dict[str, int]:
    p = await broadcasts.progress(app.db, broadcast_id, now=app.clock())
    counts = {"queued": p.queued, "sending": p.sending, "sent": p.sent,
              "delivered": p.delivered, "failed": p.failed, "cancelled": p.cancelled}
    return {status: n for status, n in counts.items() if n}


async def test_progress_counts_match_the_outbox_whatever_changes_it(village: App) -> None:
    people = [await add_person(village, f"+336000003{n:02d}") for n in range(12)]
    composed = await broadcasts.compose(village.db, {"fr": "Réunion jeudi."},
                                        now=village.clock())
    made = await broadcasts.create(village.db, composed, by="claire", now=village.clock(),
                                   i18n=village.i18n, windows=village.dispatcher.windows)
    assert made.total == 12
    now = village.clock()

    async def step(fn: Any) -> None:
        await village.db.run(fn)
        assert await kept(village, made.id) == await actual(village, made.id)

    assert await kept(village, made.id) == await actual(village, made.id) == {"queued": 12}
    claimed: list[box.OutboxItem] = []

    def claim(conn: Connection) -> None:
        claimed.extend(box.claim(conn, "sms", "test", now, limit=8))

    await step(claim)  # 8 sending
    assert len(claimed) == 8
    await step(lambda conn: box.mark_all_sent(conn, [
        box.Sent(item.id, f"SM{item.id}", now) for item in claimed[:4]]))
    await step(lambda conn: box.mark_retry(conn, claimed[4], "timeout", now))
    await step(lambda conn: box.mark_failed(conn, claimed[5].id, "400", now))
    await step(lambda conn: box.release_claims(conn, "test", [claimed[6].id]))
    await step(lambda conn: box.apply_delivery_report(conn, DeliveryReport(
        f"SM{claimed[0].id}", DeliveryState.DELIVERED), now))
    await step(lambda conn: box.apply_delivery_report(conn, DeliveryReport(
        f"SM{claimed[1].id}", DeliveryState.FAILED, "30006"), now))
    # A person's STOP fails what was queued for them; erasing one deletes their rows.
    waiting = [p for p in people if p not in {i.participant_id for i in claimed}]
    await step(lambda conn: set_participant_status(conn, waiting[0], Status.STOPPED, now))
    await step(lambda conn: erase_participant(conn, waiting[1], now))
    await step(lambda conn: erase_participant(conn, claimed[2].participant_id or 0, now))
    assert await kept(village, made.id) == {"queued": 4, "sending": 1, "sent": 1,
                                            "delivered": 1, "failed": 3}
    stopped = await broadcasts.cancel(village.db, made.id, by="claire", now=now)
    assert await kept(village, made.id) == await actual(village, made.id)
    assert (stopped.cancelled, stopped.sending, stopped.remaining) == (4, 1, 1)
    await step(lambda conn: box.mark_all_sent(conn, [box.Sent(claimed[7].id, None, now)]))
    done = await broadcasts.progress(village.db, made.id, now=now)
    assert (done.status, done.remaining, done.sent) == ("cancelled", 0, 2)


async def test_rows_of_people_who_stopped_are_swept_walking_the_few_who_stopped(
        village: App) -> None:
    for n in range(5):
        await add_person(village, f"+336000004{n:02d}")
    made = await broadcasts.create(
        village.db, await broadcasts.compose(village.db, {"fr": "Info"}, now=village.clock()),
        by="claire", now=village.clock(), i18n=village.i18n,
        windows=village.dispatcher.windows)
    now = village.clock()
    # Stopped behind the dispatcher's back (a STOP committed after its rows were read).
    await village.db.run(lambda conn: conn.execute(
        update(participants).where(participants.c.address.in_(["+33600000401",
                                                               "+33600000403"]))
        .values(status=Status.STOPPED.value)))
    swept = await village.db.run(lambda conn: box.cancel_stopped(conn, "sms", now))
    assert swept == 2
    assert await actual(village, made.id) == {"queued": 3, "failed": 2}
    assert await kept(village, made.id) == {"queued": 3, "failed": 2}
    assert await village.db.run(lambda conn: box.cancel_stopped(conn, "sms", now)) == 0
    if village.db.dialect == "sqlite":
        plan = await village.db.run(lambda conn: " / ".join(
            str(row[-1]) for row in conn.execute(
                text("EXPLAIN QUERY PLAN " + str(box._CANCEL_STOPPED_SQLITE)),
                {"for_channel": "sms", "now": "2026-01-01 00:00:00", "reason": "x"})))
        assert "ix_participants_inactive" in plan and "ix_outbox_queue" not in plan, plan


async def test_one_process_never_puts_the_limit_and_one_more_in_a_second() -> None:
    """Whatever was late: slots 1/rate apart at 99.2 % of a limit of 30, the event loop
    late for some of them (up to LATE), never 31 handouts within 1 s + GUARD; and the pace
    kept (late moments are caught up, a little each second)."""
    assert PACE * 30 >= 0.99 * 30 and 1 / PACE - 1 > GUARD
    clock = FakeClock()
    budget = Budget(LocalLevel(30 * PACE, clock=clock), 30 * PACE, limit=30)
    rng = random.Random(12)
    handed: list[float] = []

    class Handouts(deque[float]):  # the instant of each handout, as the budget sees it
        def append(self, at: float) -> None:
            handed.append(at)
            super().append(at)

    budget._recent = Handouts(maxlen=30)

    async def one() -> None:
        await budget.take(1)

    loop = asyncio.get_running_loop()
    real_time = loop.time
    loop.time = clock  # type: ignore[method-assign]
    try:
        tasks = [asyncio.create_task(one()) for _ in range(300)]
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
            # The loop wakes up late: mostly a little, sometimes up to LATE.
            clock.now += 0.0005 + (rng.random() * LATE if rng.random() < 0.001 else 0.0)
    finally:
        loop.time = real_time  # type: ignore[method-assign]
    spans = [handed[n + 30] - handed[n] for n in range(len(handed) - 30)]
    assert min(spans) >= 1.0 + GUARD - 1e-9, min(spans)
    pace = (len(handed) - 1) / (handed[-1] - handed[0])
    assert pace >= 0.99 * 30, pace


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_margin_follows_how_unevenly_sends_arrive() -> None:
    budget = Budget(LocalLevel(992.0), 992.0, limit=1000)
    for n in range(1000):
        budget.observe(0.002 + (n % 10) * 0.0003)  # even: 2-4.7 ms
    assert budget.guard == GUARD
    rng = random.Random(3)
    for _ in range(1000):  # a busy process: a few sends take 30 ms longer than the rest
        budget.observe(0.002 + (0.03 if rng.random() < 0.01 else 0.0))
    assert 0.03 <= budget.guard <= MOST_GUARD
    for _ in range(1000):
        budget.observe(0.001 if rng.random() < 0.5 else 1.0)  # never more than MOST_GUARD
    assert budget.guard == MOST_GUARD
    for n in range(1000):  # a second of even sends later: back to GUARD
        budget.observe(0.002 + (n % 10) * 0.0003)
    assert budget.guard == GUARD
