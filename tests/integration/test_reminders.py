"""Votz speaks first: phase events, reminders, nudges, results and outcomes on a schedule.

Every test moves an injected clock and calls the scheduler's `tick()` itself: nothing sleeps,
APScheduler's timing is not under test here (tests/e2e/test_reminders_run.py runs it).
Storage tests run on SQLite and PostgreSQL (the `database` fixture).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from bot.app import App
from bot.delivery.outbox import OutboxStatus
from bot.scheduling import events as events_module
from bot.scheduling.scheduler import Scheduler
from bot.staff import campaigns as staff_campaigns
from bot.staff import moderation
from bot.store.tables import (
    ballot_drafts,
    ballots,
    campaign_events,
    campaign_log,
    follows,
    outbox,
    proposals,
)
from tests.conftest import FixedClock, Person, RecordingSender
from tests.integration.reminders import (
    CLOSING_DUE,
    RESULTS_DUE,
    T0,
    VILLAGE,
    VOTE_END,
    add_person,
    cast,
    event_row,
    proposal_ids,
    rows,
    write,
)

# --- phases ------------------------------------------------------------------------------------


async def test_the_vote_closes_at_the_exact_second(village: App, clock: FixedClock,
                                                   senders: dict[str, RecordingSender]) -> None:
    person = Person(village, senders["sms"], "+33611111111", channel="sms")
    await person.onboard()
    first, second, _ = proposal_ids(village)
    clock.now = VOTE_END - timedelta(seconds=2)
    assert "Votre vote" in await person.say(f"VOTE P{first}")
    clock.now = VOTE_END - timedelta(seconds=1)  # the last second of the vote
    assert "A voté" in await person.say("1")
    assert "Votre vote" in await person.say(f"VOTE P{second}")
    clock.now = VOTE_END  # this confirmation arrives one second too late
    late = await person.say("1")
    assert "est clos : votre vote n'a pas été enregistré" in late, late
    votes = await village.db.run(lambda conn: conn.execute(select(ballots.c.choices)).all())
    assert [v.choices for v in votes] == [str(first)]


# --- who hears what, once ----------------------------------------------------------------------


async def test_each_reminder_reaches_exactly_its_audience_once(
        village: App, clock: FixedClock, senders: dict[str, RecordingSender]) -> None:
    voter = await add_person(village, "+33600000001")
    waiting = await add_person(village, "+33600000002")
    tg = await add_person(village, "4242", channel="telegram", locale="en")
    await add_person(village, "+33600000003", status="stopped")
    await add_person(village, "+33600000004", consent=False)
    await add_person(village, "+33600000005", dep="75")  # outside the campaign's territory
    await add_person(village, "+33600000006", age="under-15")
    quiet = await add_person(village, "+33600000007", reminders=False)
    unfollowing = await add_person(village, "+33600000008")
    await add_person(village, "console-person", channel="console")  # never queued to
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    await village.db.run(lambda conn: conn.execute(insert(follows).values(
        participant_id=unfollowing, campaign_id=campaign.id, following=False, updated_at=T0)))
    await cast(village, voter, proposal_ids(village)[:1])
    scheduler = Scheduler(village)

    first = await scheduler.tick()  # T0: "vote-opens" (due 3 h ago, inside the grace)
    assert [(f.event, f.status) for f in first.fired] == [("vote-opens", "done")]
    opened = await rows(village, "event:%:vote-opens:%")
    assert sorted(r.participant_id for r in opened) == sorted([voter, waiting, tg])
    assert all(r.bulk for r in opened)
    assert quiet not in {r.participant_id for r in opened}

    clock.now = CLOSING_DUE - timedelta(seconds=1)
    assert (await scheduler.tick()).fired == ()
    clock.now = CLOSING_DUE
    closing = await scheduler.tick()
    assert [f.event for f in closing.fired] == ["vote-closing"]
    reminded = await rows(village, "event:%:vote-closing:%")
    assert sorted(r.participant_id for r in reminded) == sorted([waiting, tg])  # not the voter
    en = next(r for r in reminded if r.participant_id == tg)
    fr = next(r for r in reminded if r.participant_id == waiting)
    assert "Village budget" in en.text and "Budget du village" in fr.text

    # Replayed ticks, and the event fired again by hand: nothing more is queued.
    await scheduler.tick()
    await village.db.run(lambda conn: conn.execute(
        update(campaign_events).where(campaign_events.c.event == "vote-closing")
        .values(status="pending")))
    replay = await scheduler.tick()
    assert [f.queued for f in replay.fired] == [0]
    assert len(await rows(village, "event:%:vote-closing:%")) == 2

    await village.dispatcher.drain()
    assert sorted(a for a, _ in senders["sms"].sent) == ["+33600000001", "+33600000002",
                                                         "+33600000002"]
    assert [a for a, _ in senders["telegram"].sent] == ["4242", "4242"]


async def test_a_crash_in_the_middle_of_a_tick_loses_and_repeats_nothing(
        village: App, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        await add_person(village, f"+3360000010{n}")
    clock.now = RESULTS_DUE + timedelta(minutes=5)  # vote-closing (late, in grace?) and results
    clock.now = CLOSING_DUE + timedelta(hours=1)
    scheduler = Scheduler(village)
    await scheduler.tick()  # vote-opens is long past now: skipped; vote-closing fires
    real = events_module.queue_audience
    calls = {"n": 0}

    def crashing(conn: Any, **kwargs: Any) -> int:
        real(conn, **kwargs)  # rows written, then the process dies before the commit
        calls["n"] += 1
        raise RuntimeError("killed in the middle of the tick")

    await village.db.run(lambda conn: conn.execute(
        update(campaign_events).where(campaign_events.c.event == "vote-closing")
        .values(status="pending")))
    await village.db.run(lambda conn: conn.execute(outbox.delete()))
    monkeypatch.setattr(events_module, "queue_audience", crashing)
    crashed = await scheduler.tick()
    assert crashed.failed == ("RuntimeError: killed in the middle of the tick",)
    assert calls["n"] == 1
    assert await rows(village) == []  # the transaction rolled back: nothing half-queued
    assert (await event_row(village, "vote-closing")).status == "pending"
    monkeypatch.setattr(events_module, "queue_audience", real)
    await Scheduler(village).tick()  # the restarted process
    assert len(await rows(village, "event:%:vote-closing:%")) == 5
    await Scheduler(village).tick()
    assert len(await rows(village, "event:%:vote-closing:%")) == 5


@pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_two_schedulers_on_one_postgresql_database_send_once(
        two_processes: tuple[App, App]) -> None:
    one, other = two_processes
    people = [await add_person(one, f"+336000002{n:02d}") for n in range(40)]
    for _ in range(3):
        await asyncio.gather(Scheduler(one).tick(), Scheduler(other).tick(),
                             Scheduler(one).tick())
    queued = await rows(one, "event:%:vote-closing:%")
    assert sorted(r.participant_id for r in queued) == sorted(people)


# --- dates that change, events missed -----------------------------------------------------------


async def test_changed_dates_reschedule_what_is_pending_and_are_logged(
        village: App, clock: FixedClock, tmp_path: Path) -> None:
    await add_person(village, "+33600000301")
    scheduler = Scheduler(village)
    await scheduler.tick()
    later = VILLAGE.replace('end: "2026-03-20T18:00"', 'end: "2026-03-25T18:00"').replace(
        'start: "2026-03-21T09:00"', 'start: "2026-03-26T09:00"')
    await village.load_campaigns(write(tmp_path / "v2", later), actor="alice")
    moved = await event_row(village, "vote-closing")
    assert moved.status == "pending"
    assert moved.due_at == CLOSING_DUE + timedelta(days=5)
    logged = await village.db.run(lambda conn: conn.execute(
        select(campaign_log.c.actor, campaign_log.c.action, campaign_log.c.detail)).all())
    assert any(r.actor == "alice" and r.action == "rescheduled" and "vote-closing" in r.detail
               for r in logged), logged
    clock.now = CLOSING_DUE  # the old date: nothing
    assert (await scheduler.tick()).fired == ()
    clock.now = CLOSING_DUE + timedelta(days=5)
    assert [f.event for f in (await scheduler.tick()).fired] == ["vote-closing"]
    keys = {r.idempotency_key.split(":")[3] for r in await rows(village, "event:%")}
    assert len(keys) == 2  # vote-opens under the first dates, vote-closing under the new


@pytest.mark.parametrize(("late", "sent"), [(timedelta(hours=5, minutes=59), True),
                                            (timedelta(hours=6, minutes=1), False)])
async def test_an_event_missed_while_down_is_sent_late_within_the_grace_period(
        village: App, clock: FixedClock, late: timedelta, sent: bool) -> None:
    await add_person(village, "+33600000401")
    clock.now = CLOSING_DUE - timedelta(days=1)
    scheduler = Scheduler(village)
    await scheduler.tick()  # vote-opens: long past, skipped (more than 6 h)
    assert (await event_row(village, "vote-opens")).status == "skipped"
    clock.now = CLOSING_DUE + late  # Votz was down when it was due
    await scheduler.tick()
    row = await event_row(village, "vote-closing")
    assert row.status == ("done" if sent else "skipped")
    assert len(await rows(village, "event:%:vote-closing:%")) == (1 if sent else 0)
    if not sent:
        logged = await village.db.run(lambda conn: conn.execute(
            select(campaign_log.c.detail).where(campaign_log.c.action == "skipped")).scalars()
            .all())
        assert any("vote-closing" in d and "missed" in d for d in logged), logged


# --- quiet hours ---------------------------------------------------------------------------------


async def test_an_sms_reminder_due_at_night_waits_for_the_morning_a_reply_does_not(
        village: App, clock: FixedClock, senders: dict[str, RecordingSender],
        tmp_path: Path) -> None:
    night = VILLAGE.replace("ballot:", """reminders:
  - {id: night, when: vote.start + 14h, audience: eligible, text: {fr: "Rappel {campaign}"}}
ballot:""")
    await village.load_campaigns(write(tmp_path / "night", night))
    person = Person(village, senders["sms"], "+33611110000", channel="sms")
    await person.onboard()
    tg = await add_person(village, "5151", channel="telegram")
    clock.now = datetime(2026, 3, 10, 21, 0, tzinfo=UTC)  # 22:00 in Paris, Tuesday
    fired = await Scheduler(village).tick()
    assert [f.event for f in fired.fired] == ["night"]
    queued = {r.channel: r for r in await rows(village, "event:%:night:%")}
    assert queued["sms"].next_attempt_at == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)  # 09:00
    assert queued["telegram"].next_attempt_at == clock.now and tg
    await village.dispatcher.drain()
    assert [a for a, _ in senders["telegram"].sent] == ["5151"]
    reply = await person.say("AIDE")  # 22:00: the answer leaves at once, the reminder waits
    assert reply and "Rappel" not in reply
    assert not any("Rappel" in r.text for _, r in senders["sms"].sent)
    clock.now = datetime(2026, 3, 11, 7, 59, tzinfo=UTC)
    await village.dispatcher.drain()
    assert not any("Rappel" in r.text for _, r in senders["sms"].sent)
    clock.now = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
    await village.dispatcher.drain()
    assert [r.text for a, r in senders["sms"].sent if "Rappel" in r.text] == [
        "Rappel Budget du village\n" + village.i18n["fr"]("event.hint")]


async def test_a_bulk_sms_due_inside_the_window_that_is_not_sent_by_20h_waits_for_morning(
        village: App, clock: FixedClock, senders: dict[str, RecordingSender]) -> None:
    await add_person(village, "+33600000501")
    clock.now = CLOSING_DUE  # 18:00 in Paris: queued to leave now
    await Scheduler(village).tick()
    clock.now = datetime(2026, 3, 18, 19, 30, tzinfo=UTC)  # 20:30: the dispatcher was late
    await village.dispatcher.drain()
    assert senders["sms"].sent == []
    clock.now = datetime(2026, 3, 19, 8, 0, tzinfo=UTC)  # Thursday 09:00
    await village.dispatcher.drain()
    assert [a for a, _ in senders["sms"].sent] == ["+33600000501"]


# --- people control it -----------------------------------------------------------------------


async def test_unfollowed_campaigns_and_reminders_off_are_respected(village: App,
                                                                     clock: FixedClock) -> None:
    keen = await add_person(village, "+33600000601")
    off = await add_person(village, "+33600000602", reminders=False)
    gone = await add_person(village, "+33600000603")
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    await village.db.run(lambda conn: conn.execute(insert(follows).values(
        participant_id=gone, campaign_id=campaign.id, following=False, updated_at=T0)))
    for pid in (keen, off, gone):
        await cast(village, pid, proposal_ids(village)[:1])
    clock.now = CLOSING_DUE - timedelta(days=1)
    await Scheduler(village).tick()
    clock.now = RESULTS_DUE
    await Scheduler(village).tick()
    results = await rows(village, "event:%:results:%")
    # Results are an outcome of what they did: RAPPELS NON does not hold them back;
    # unfollowing the campaign does.
    assert sorted(r.participant_id for r in results) == sorted([keen, off])


# --- unfinished ballots ----------------------------------------------------------------------------


async def test_an_unfinished_ballot_is_nudged_after_2_hours_then_a_week_later(
        village: App, clock: FixedClock) -> None:
    left = await add_person(village, "+33600000701")
    finished = await add_person(village, "+33600000702")
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    started = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    for pid in (left, finished):
        await village.db.run(lambda conn, pid=pid: conn.execute(insert(ballot_drafts).values(
            participant_id=pid, campaign_id=campaign.id, updated_at=started)))
    await cast(village, finished, proposal_ids(village)[:1])
    scheduler = Scheduler(village)

    async def nudges() -> list[Any]:
        return await rows(village, "nudge:%")

    clock.now = started + timedelta(hours=1, minutes=59)
    await scheduler.tick()
    assert await nudges() == []
    clock.now = started + timedelta(hours=2)
    assert (await scheduler.tick()).nudged == 1
    assert [r.participant_id for r in await nudges()] == [left]
    clock.now += timedelta(hours=3)
    await scheduler.tick()
    assert len(await nudges()) == 1
    clock.now = started + timedelta(days=7)
    assert (await scheduler.tick()).nudged == 1
    clock.now += timedelta(days=1)
    await scheduler.tick()
    assert len(await nudges()) == 2  # two nudges, no more


async def test_no_nudge_in_the_last_6_hours_of_the_vote_nor_within_24_hours(
        village: App, clock: FixedClock) -> None:
    late = await add_person(village, "+33600000801")
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    await village.db.run(lambda conn: conn.execute(insert(ballot_drafts).values(
        participant_id=late, campaign_id=campaign.id,
        updated_at=VOTE_END - timedelta(hours=9), nudges=0,
        nudged_at=VOTE_END - timedelta(hours=20))))
    clock.now = VOTE_END - timedelta(hours=6, minutes=30)  # 2 h after, but nudged 13.5 h ago
    await Scheduler(village).tick()
    clock.now = VOTE_END - timedelta(hours=5)  # 24 h gap not over, and the last 6 hours
    await Scheduler(village).tick()
    clock.now = VOTE_END - timedelta(minutes=1)
    await Scheduler(village).tick()
    assert await rows(village, "nudge:%") == []


# --- results and outcomes ---------------------------------------------------------------------------


async def test_results_reach_each_voter_once_with_their_departements_figures(
        village: App, clock: FixedClock, senders: dict[str, RecordingSender]) -> None:
    first, second, third = proposal_ids(village)
    toulouse = [await add_person(village, f"+336000009{n:02d}", dep="31") for n in range(6)]
    mende = [await add_person(village, f"+336000019{n:02d}", dep="48") for n in range(2)]
    for pid in toulouse[:5]:
        await cast(village, pid, [first, second], dep="31")
    await cast(village, toulouse[5], [third], dep="31")
    for pid in mende:
        await cast(village, pid, [third], dep="48")
    english = await add_person(village, "7777", channel="telegram", locale="en", dep="31")
    await cast(village, english, [second], dep="31")
    clock.now = RESULTS_DUE - timedelta(days=1)
    scheduler = Scheduler(village)
    await scheduler.tick()
    clock.now = RESULTS_DUE
    await scheduler.tick()
    await scheduler.tick()
    pushed = await rows(village, "event:%:results:%")
    assert sorted(r.participant_id for r in pushed) == sorted([*toulouse, *mende, english])
    by_pid = {r.participant_id: r.text for r in pushed}
    t_fr, t_en = village.i18n["fr"], village.i18n["en"]
    assert t_fr("event.results_local", dep="31", voters=7, top=f"P{second}", votes=6) \
        in by_pid[toulouse[0]]
    assert t_fr("event.results_local_hidden", dep="48") in by_pid[mende[0]]  # 2 voters: hidden
    assert t_en("event.results_local", dep="31", voters=7, top=f"P{second}", votes=6) \
        in by_pid[english]
    assert f"P{second}" in by_pid[mende[0]]  # the winners, for everyone


async def test_an_author_hears_their_idea_published_or_rejected_with_the_reason(
        village: App, clock: FixedClock, senders: dict[str, RecordingSender]) -> None:
    anne = await add_person(village, "+33600001001")
    bob = await add_person(village, "9999", channel="telegram", locale="en")
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None

    def propose(conn: Any, pid: int) -> int:
        return int(conn.execute(insert(proposals).values(
            campaign_id=campaign.id, author_id=pid, title='{"fr": "Une idée"}',
            status="submitted", created_at=T0 - timedelta(days=3)).returning(proposals.c.id)
        ).scalar_one())

    ideas = [await village.db.run(lambda conn, pid=pid: propose(conn, pid))
             for pid in (anne, bob)]
    # Monday 21:30 in Paris, the evening before the vote opens (moderation decides freely
    # until then), after the SMS window has closed.
    clock.now = datetime(2026, 3, 9, 20, 30, tzinfo=UTC)
    notify = moderation.Notify(village.i18n, village.dispatcher.windows, clock.now)
    done = await moderation.publish(village.db, [f"P{ideas[0]}"], notify=notify)
    assert done.complete
    await moderation.reject(village.db, [f"P{ideas[1]}"], notify=notify, reason="off_topic")
    await moderation.publish(village.db, [f"P{ideas[0]}"], notify=notify)  # again: no news
    told = {r.participant_id: r for r in await rows(village, "proposal:%")}
    assert set(told) == {anne, bob}
    assert told[anne].text == village.i18n["fr"]("outcome.published", code=f"P{ideas[0]}",
                                                 campaign="Budget du village")
    assert village.i18n["en"]("reason.off_topic") in told[bob].text
    assert told[anne].next_attempt_at == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # SMS: 09:00
    assert told[bob].next_attempt_at == clock.now  # Telegram: no window by default
    await village.dispatcher.drain()
    assert [a for a, _ in senders["telegram"].sent] == ["9999"]
    assert senders["sms"].sent == []


# --- staff ---------------------------------------------------------------------------------------


async def test_staff_force_a_phase_with_a_logged_reason(village: App, clock: FixedClock) -> None:
    voter = await add_person(village, "+33600001101")
    await cast(village, voter, proposal_ids(village)[:1])
    clock.now = T0 + timedelta(days=1)
    await Scheduler(village).tick()
    changes = await staff_campaigns.force_phase(
        village.db, "village", staff_campaigns.Phase.RESULTS, clock.now, actor="claire",
        reason="vote clos plus tôt après la réunion publique",
        grace=timedelta(hours=6))
    assert any(c.startswith("results:") for c in changes)
    await village.refresh_catalog()
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None and campaign.phase_at(clock.now) is \
        staff_campaigns.Phase.RESULTS
    fired = await Scheduler(village).tick()
    assert "results" in [f.event for f in fired.fired]
    assert [r.participant_id for r in await rows(village, "event:%:results:%")] == [voter]
    status = (await staff_campaigns.campaign_status(village.db, clock.now, village.i18n,
                                                    slug="village"))[0]
    assert any(a == "claire" and action == "phase" and "réunion" in d
               for _, a, action, d in status.log)
    counts = await village.db.run(lambda conn: conn.execute(
        select(func.count()).select_from(outbox).where(
            outbox.c.status == OutboxStatus.QUEUED.value)).scalar())
    assert counts == 1


async def test_the_opt_out_hint_comes_once_in_30_days_and_only_by_sms(
        village: App, clock: FixedClock, tmp_path: Path) -> None:
    texts = VILLAGE.replace("ballot:", """reminders:
  - {id: one, when: vote.start + 4h, audience: eligible, text: {fr: "Un {campaign}"}}
  - {id: two, when: vote.start + 5h, audience: eligible, text: {fr: "Deux {campaign}"}}
  - {id: three, when: vote.start + 31d, audience: eligible, text: {fr: "Trois {campaign}"}}
ballot:""").replace('end: "2026-03-20T18:00"', 'end: "2026-04-20T18:00"').replace(
        'start: "2026-03-21T09:00"', 'start: "2026-04-21T09:00"')
    await village.load_campaigns(write(tmp_path / "hint", texts))
    await add_person(village, "+33600001201")
    await add_person(village, "6161", channel="telegram")
    hint = "\n" + village.i18n["fr"]("event.hint")
    for moment in (datetime(2026, 3, 10, 11, 0, tzinfo=UTC),
                   datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
                   datetime(2026, 4, 10, 6, 0, tzinfo=UTC)):  # 08:00 Paris, summer time
        clock.now = moment
        await Scheduler(village).tick()
    got = {(r.channel, r.text.split(" ")[0]): r.text.endswith(hint) for r in await rows(
        village, "event:%")}
    assert got == {("sms", "Un"): True, ("sms", "Deux"): False, ("sms", "Trois"): True,
                   ("telegram", "Un"): False, ("telegram", "Deux"): False,
                   ("telegram", "Trois"): False}


async def test_a_campaign_can_narrow_its_own_sending_window(
        village: App, clock: FixedClock, tmp_path: Path) -> None:
    narrow = VILLAGE.replace("ballot:", """sending_window: {sms: "mon-fri 10:00-12:00"}
ballot:""")
    await village.load_campaigns(write(tmp_path / "narrow", narrow))
    await add_person(village, "+33600001301")
    clock.now = CLOSING_DUE  # Wednesday 18:00 in Paris: the campaign sends at 10:00 only
    await Scheduler(village).tick()
    (row,) = await rows(village, "event:%:vote-closing:%")
    assert row.next_attempt_at == datetime(2026, 3, 19, 9, 0, tzinfo=UTC)  # Thu 10:00 Paris


async def test_a_failing_tick_shows_on_health_and_clears_when_it_works_again(
        village: App, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = Scheduler(village)
    seconds = [1000.0]
    scheduler.monotonic = lambda: seconds[0]
    real = events_module.fire_next

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database said no")

    monkeypatch.setattr("bot.scheduling.scheduler.fire_next", broken)
    await scheduler._job()
    assert scheduler.health() == []  # one failure (a lock for a few seconds) is no alarm
    seconds[0] += 61
    await scheduler._job()
    assert scheduler.health() == [
        "scheduler: ticks failing for 61 s, the last one: RuntimeError: database said no"]
    monkeypatch.setattr("bot.scheduling.scheduler.fire_next", real)
    await scheduler._job()
    assert scheduler.health() == []
    assert scheduler.state.ticks == 1 and scheduler.state.last_tick is not None


def test_winners_are_named_by_the_start_of_their_titles_cut_between_words(village: App) -> None:
    from bot.scheduling.events import ResultsText

    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    long = "Navette à la demande vers le marché et le médecin, deux jours par semaine"
    results = ResultsText(campaign, ("P7", "P9"), {"P7": {"fr": long},
                                                   "P9": {"fr": "Bancs publics"}}, {})
    assert results.winners(village.i18n, "fr") == \
        "Retenus : P7 Navette à la demande vers le…, P9 Bancs publics."
    alone = ResultsText(campaign, ("P7",), {"P7": {"fr": long}}, {})
    assert alone.winners(village.i18n, "fr") == "Retenus : P7 Navette à la demande vers le…"


async def test_campaigns_loaded_before_the_scheduler_existed_are_planned_by_the_first_tick(
        village: App, clock: FixedClock) -> None:
    """A database upgraded from a version without events: no campaign_events rows."""
    await add_person(village, "+33600001501")
    await village.db.run(lambda conn: conn.execute(campaign_events.delete()))
    tick = await Scheduler(village).tick()
    assert [f.event for f in tick.fired] == ["vote-opens"]  # due 3 hours ago: within grace
    assert len(await rows(village, "event:%:vote-opens:%")) == 1
    assert (await event_row(village, "vote-closing")).status == "pending"
    assert (await Scheduler(village).tick()).fired == ()
