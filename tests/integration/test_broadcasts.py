"""Staff broadcasts (bot/staff/broadcasts.py) on SQLite and PostgreSQL: who gets one, in
which language, when; scheduled ones queued by the scheduler with the audience of that
moment; progress counted from the outbox; a cancel that stops what has not left."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import App
from bot.errors import ConfigError
from bot.scheduling.scheduler import Scheduler
from bot.staff import broadcasts
from bot.staff.broadcasts import Audience
from bot.store.tables import follows, outbox
from tests.conftest import FixedClock, RecordingSender
from tests.integration.reminders import add_person, cast, proposal_ids


async def make(app: App, texts: dict[str, str], audience: Audience | None = None, *,
               at: Any = None, by: str = "claire") -> broadcasts.Progress:
    composed = await broadcasts.compose(app.db, texts, audience, now=app.clock(), at=at)
    return await broadcasts.create(app.db, composed, by=by, now=app.clock(), at=at,
                                   i18n=app.i18n, windows=app.dispatcher.windows)


async def addressed(app: App, broadcast_id: int) -> dict[str, str]:
    found = await app.db.run(lambda conn: conn.execute(
        select(outbox.c.address, outbox.c.text).where(outbox.c.broadcast_id == broadcast_id)
    ).all())
    return {address: text.split("\n")[0] for address, text in found}  # without the hint


async def test_filters_combine_and_nobody_unreachable_is_queued(village: App) -> None:
    await add_person(village, "+33600000001", dep="48", age="18-25")
    await add_person(village, "+33600000002", dep="48", age="50-64")
    await add_person(village, "+33600000003", dep="31", age="18-25", locale="oc")
    await add_person(village, "77", channel="telegram", dep="48", age="18-25", locale="en")
    # Never: stopped (STOP, blocked), no consent, announcements off, the console.
    await add_person(village, "+33600000005", dep="48", status="stopped")
    await add_person(village, "+33600000006", dep="48", consent=False)
    await add_person(village, "+33600000007", dep="48", reminders=False)
    await add_person(village, "console", channel="console", dep="48")
    texts = {"fr": "Réunion publique jeudi à Mende.", "en": "Public meeting on Thursday."}

    young_lozere = Audience(departements=("48",), ages=("18-25",))
    seen = await broadcasts.show(village.db, await broadcasts.compose(
        village.db, texts, young_lozere), price=0.1)
    assert seen.recipients == {"sms": 1, "telegram": 1}
    assert seen.by_locale == {"sms": {"fr": 1}, "telegram": {"en": 1}}
    assert seen.missing_locales == ()
    assert (seen.segments("sms"), seen.cost) == (1, 0.1)

    everyone = await broadcasts.show(village.db, await broadcasts.compose(village.db, texts))
    assert everyone.total == 4
    assert everyone.missing_locales == ("oc",)  # the Occitan speaker gets the French text

    made = await make(village, texts, Audience(channel="sms", locales=("fr",)))
    assert made.total == 2
    assert await addressed(village, made.id) == {"+33600000001": texts["fr"],
                                                  "+33600000002": texts["fr"]}
    all_of_them = await make(village, texts)
    assert await addressed(village, all_of_them.id) == {
        "+33600000001": texts["fr"], "+33600000002": texts["fr"],
        "+33600000003": texts["fr"], "77": texts["en"]}


async def test_campaign_audiences_and_not_voted(village: App) -> None:
    voter = await add_person(village, "+33600000001")
    await add_person(village, "+33600000002")
    unfollowing = await add_person(village, "+33600000003")
    await add_person(village, "+33600000004", dep="12")  # not in the village's territory
    await cast(village, voter, proposal_ids(village)[:1])
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None

    def unfollow(conn: Any) -> None:
        conn.execute(follows.insert().values(participant_id=unfollowing,
                                             campaign_id=campaign.id, following=False,
                                             updated_at=village.clock()))

    await village.db.run(unfollow)
    text = {"fr": "Plus que 2 jours pour voter !"}
    eligible = await make(village, text, Audience(campaign="village"))
    assert set(await addressed(village, eligible.id)) == {"+33600000001", "+33600000002"}
    pending = await make(village, {"fr": "Vous n'avez pas encore voté."},
                         Audience(not_voted="village"))
    assert set(await addressed(village, pending.id)) == {"+33600000002"}


async def test_bad_values_are_refused_with_the_valid_ones(village: App) -> None:
    with pytest.raises(ConfigError, match="unknown département '75': one of 09, 11"):
        await broadcasts.compose(village.db, {"fr": "x"}, Audience(departements=("75",)))
    with pytest.raises(ConfigError, match="unknown age bracket '12': one of under-15"):
        await broadcasts.compose(village.db, {"fr": "x"}, Audience(ages=("12",)))
    with pytest.raises(ConfigError, match="unknown channel 'console': one of sms, telegram"):
        await broadcasts.compose(village.db, {"fr": "x"}, Audience(channel="console"))
    with pytest.raises(ConfigError, match="needs its 'fr' text"):
        await broadcasts.compose(village.db, {"fr": " ", "en": "x"})
    with pytest.raises(Exception, match="no campaign 'nope'"):
        await broadcasts.compose(village.db, {"fr": "x"}, Audience(not_voted="nope"))
    # Written without its leading zero, the Ariège is still the Ariège.
    composed = await broadcasts.compose(village.db, {"fr": "x"}, Audience(departements=("9",)))
    assert composed.audience.departements == ("09",)


async def test_progress_follows_the_outbox_and_cancel_stops_what_is_queued(
        village: App, senders: dict[str, RecordingSender]) -> None:
    for n in range(6):
        await add_person(village, f"+3360000010{n}")
    made = await make(village, {"fr": "Info travaux"})
    assert (made.status, made.total, made.queued, made.left) == ("sending", 6, 6, 0)
    # Two leave, one is with the provider when staff cancel.
    first: list[int] = await village.db.run(lambda conn: conn.execute(
        select(outbox.c.id).where(outbox.c.broadcast_id == made.id)
        .order_by(outbox.c.id).limit(2)).scalars().all())
    await village.db.run(lambda conn: conn.execute(
        update(outbox).where(outbox.c.id.in_(first)).values(status="delivered")))
    await village.db.run(lambda conn: conn.execute(
        update(outbox).where(outbox.c.id == select(outbox.c.id).where(
            outbox.c.broadcast_id == made.id, outbox.c.status == "queued")
            .order_by(outbox.c.id).limit(1).scalar_subquery()).values(status="sending")))
    middle = await broadcasts.progress(village.db, made.id, now=village.clock())
    assert (middle.delivered, middle.sending, middle.queued, middle.remaining) == (2, 1, 3, 4)
    stopped = await broadcasts.cancel(village.db, made.id, by="claire", now=village.clock())
    assert (stopped.status, stopped.cancelled, stopped.sending, stopped.delivered) == \
        ("cancelled", 3, 1, 2)
    assert stopped.cancelled_by == "claire"
    before = len(senders["sms"].sent)
    await village.dispatcher.drain()
    assert len(senders["sms"].sent) == before  # nothing cancelled leaves
    again = await broadcasts.cancel(village.db, made.id, by="paul", now=village.clock())
    assert again.cancelled_by == "claire"  # cancelling twice changes nothing
    assert [p.id for p in await broadcasts.running(village.db)] == [made.id]
    assert await broadcasts.finish(village.db, made.id, village.clock())
    assert not await broadcasts.finish(village.db, made.id, village.clock())  # once
    assert await broadcasts.running(village.db) == []


async def test_a_broadcast_is_sent_and_reported_done(
        village: App, senders: dict[str, RecordingSender]) -> None:
    for n in range(3):
        await add_person(village, f"+3360000020{n}")
    await add_person(village, "55", channel="telegram")
    made = await make(village, {"fr": "Le vote est ouvert."})
    await village.dispatcher.drain()  # T0 is a Tuesday at 11:00: inside the SMS window
    done = await broadcasts.progress(village.db, made.id, now=village.clock())
    assert (done.status, done.sent, done.remaining) == ("done", 4, 0)
    got = [address for address, reply in senders["sms"].sent + senders["telegram"].sent
           if reply.text.startswith("Le vote est ouvert.")]
    assert sorted(got) == ["+33600000200", "+33600000201", "+33600000202", "55"]
    listed = await broadcasts.list_broadcasts(village.db, now=village.clock())
    assert [(p.id, p.created_by, p.status) for p in listed] == [(made.id, "claire", "done")]


async def test_a_scheduled_broadcast_is_queued_at_its_time_to_the_audience_of_then(
        village: App, clock: FixedClock) -> None:
    voter = await add_person(village, "+33600000301")
    await add_person(village, "+33600000302")
    at = clock.now + timedelta(hours=3)
    made = await make(village, {"fr": "Il vous reste 2 jours pour voter."},
                      Audience(not_voted="village"), at=at)
    assert (made.status, made.total, made.send_at) == ("scheduled", 0, at)
    scheduler = Scheduler(village)
    assert (await scheduler.tick()).broadcasts == ()
    assert await scheduler.next_moment() == at
    await cast(village, voter, proposal_ids(village)[:1])  # votes meanwhile
    clock.now = at
    assert (await scheduler.tick()).broadcasts == (made.id,)
    assert set(await addressed(village, made.id)) == {"+33600000302"}
    assert (await scheduler.tick()).broadcasts == ()  # queued once
    later = await broadcasts.progress(village.db, made.id, now=clock.now)
    assert (later.status, later.total) == ("sending", 1)


async def test_a_scheduled_broadcast_cancelled_before_its_time_is_never_queued(
        village: App, clock: FixedClock) -> None:
    await add_person(village, "+33600000401")
    made = await make(village, {"fr": "Demain"}, at=clock.now + timedelta(days=1))
    await broadcasts.cancel(village.db, made.id, by="claire", now=clock.now)
    clock.now += timedelta(days=2)
    assert (await Scheduler(village).tick()).broadcasts == ()
    assert await addressed(village, made.id) == {}


async def test_two_schedulers_queue_a_scheduled_broadcast_once(
        two_processes: tuple[App, App], clock: FixedClock) -> None:
    one, other = two_processes
    for n in range(20):
        await add_person(one, f"+336000005{n:02d}")
    made = await make(one, {"fr": "À 18 h"}, at=clock.now + timedelta(minutes=5))
    clock.now += timedelta(minutes=5)
    import asyncio

    ticks = await asyncio.gather(Scheduler(one).tick(), Scheduler(other).tick())
    assert sorted(b for tick in ticks for b in tick.broadcasts) == [made.id]
    assert len(await addressed(one, made.id)) == 20


def test_send_times_read_as_staff_write_them(clock: FixedClock) -> None:
    now = clock.now  # Tuesday 10 March 2026, 11:00 in Paris
    assert broadcasts.parse_send_time("18:30", now).isoformat() == "2026-03-10T17:30:00+00:00"
    assert broadcasts.parse_send_time("18h", now).isoformat() == "2026-03-10T17:00:00+00:00"
    assert broadcasts.parse_send_time("18h30", now).isoformat() == "2026-03-10T17:30:00+00:00"
    assert broadcasts.parse_send_time("10:00", now).isoformat() == "2026-03-11T09:00:00+00:00"
    assert broadcasts.parse_send_time("12/03 08:15", now).isoformat() == \
        "2026-03-12T07:15:00+00:00"
    assert broadcasts.parse_send_time("01/03 08:15", now).year == 2027  # past: next year
    assert broadcasts.parse_send_time("2026-07-14 12:00", now).isoformat() == \
        "2026-07-14T10:00:00+00:00"  # summer time
    with pytest.raises(ConfigError, match="write 18:30"):
        broadcasts.parse_send_time("demain", now)

