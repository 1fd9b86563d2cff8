"""Edges of "Votz speaks first", found in review: each test failed on the first version.

Replies behind a bulk backlog, a campaign reloaded while its event fires, nudges the SMS
window would push into the vote's last hours, results after a forced phase and a reload,
a reserved event id, day offsets across a change to summer time; and the cases that made
mutations of the scheduler visible.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from bot.app import App
from bot.channels.base import Reply
from bot.delivery.outbox import claim, queue_values
from bot.domain.campaigns import parse_campaign
from bot.scheduling import events as events_module
from bot.scheduling.scheduler import Scheduler
from bot.staff import campaigns as staff_campaigns
from bot.staff.broadcasts import Audience, compose, create
from bot.store.tables import ballot_drafts, outbox
from tests.conftest import FixedClock
from tests.integration.reminders import (
    CLOSING_DUE,
    T0,
    VILLAGE,
    VOTE_END,
    add_person,
    cast,
    event_row,
    proposal_ids,
    rows,
    slow_queueing,
    write,
)


# 1. "A reply is never held": a bulk backlog that is due holds every reply queued after it.
async def test_a_reply_is_not_held_behind_a_due_bulk_backlog(village: App,
                                                             clock: FixedClock) -> None:
    for n in range(30):
        await add_person(village, f"+336000{n:05d}")
    composed = await compose(village.db, {"fr": "Info"}, Audience(channel="sms"), now=clock.now)
    made = await create(village.db, composed, by="test", now=clock.now, i18n=village.i18n,
                        windows=village.dispatcher.windows)
    assert made.total == 30  # Tuesday 11:00: inside the SMS window, due now

    def reply_to(conn: Any, address: str) -> None:
        conn.execute(insert(outbox).values(**queue_values(
            participant_id=None, channel="sms", address=address, reply=Reply("Réponse"),
            now=clock.now)))

    await village.db.run(lambda conn: reply_to(conn, "+33699999999"))  # not in the backlog
    await village.db.run(lambda conn: reply_to(conn, "+33600000029"))  # in the backlog
    claimed = await village.db.run(lambda conn: claim(conn, "sms", "t", clock.now, limit=20))
    replies = [i.address for i in claimed if i.reply.text == "Réponse"]
    assert sorted(replies) == ["+33600000029", "+33699999999"], \
        f"replies claimed: {replies}; bulk rows claimed first: {len(claimed) - len(replies)}"


# 2. "None in the last 6 h before the vote closes": the check is on the queueing time, the SMS
#    window then moves the nudge into the last hours of the vote (or after it closed).
MONDAY_CLOSE = VILLAGE.replace('end: "2026-03-20T18:00"', 'end: "2026-03-23T10:00"').replace(
    'start: "2026-03-21T09:00"', 'start: "2026-03-23T12:00"')


async def test_a_nudge_never_leaves_in_the_last_6_hours_of_the_vote(
        village: App, clock: FixedClock, tmp_path: Path) -> None:
    await village.load_campaigns(write(tmp_path / "monday", MONDAY_CLOSE))
    person = await add_person(village, "+33600000801")
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    left = datetime(2026, 3, 21, 17, 30, tzinfo=UTC)  # Saturday 18:30 in Paris
    await village.db.run(lambda conn: conn.execute(insert(ballot_drafts).values(
        participant_id=person, campaign_id=campaign.id, updated_at=left)))
    tg = await add_person(village, "8181", channel="telegram")
    await village.db.run(lambda conn: conn.execute(insert(ballot_drafts).values(
        participant_id=tg, campaign_id=campaign.id, updated_at=left)))
    clock.now = left + timedelta(hours=2)  # Saturday 20:30: the SMS window is closed
    # By SMS it could leave only on Monday 09:00, an hour before the vote closes: not sent,
    # and the draft is not counted as nudged. On Telegram (no window) it leaves now.
    assert (await Scheduler(village).tick()).nudged == 1
    assert [r.participant_id for r in await rows(village, "nudge:%")] == [tg]
    nudges = await village.db.run(lambda conn: dict(conn.execute(
        select(ballot_drafts.c.participant_id, ballot_drafts.c.nudges)).all()))
    assert nudges == {person: 0, tg: 1}


# 3. PostgreSQL: `votz campaigns load` (plan) while a tick fires the same event: plan read the
#    row as pending before the tick committed, then writes status=pending back over `done`,
#    with the new dates' version: the event is sent a second time to everyone.
@pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_reload_while_an_event_fires_does_not_send_it_twice(
        two_processes: tuple[App, App], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    one, other = two_processes
    for n in range(3):
        await add_person(one, f"+3360000090{n}")
    real = events_module.queue_audience
    slow_queueing(monkeypatch, 1.5)
    # Only the results date moves: vote-closing keeps its due time.
    later = VILLAGE.replace('start: "2026-03-21T09:00"', 'start: "2026-03-22T09:00"')

    async def reload() -> None:
        await asyncio.sleep(0.5)
        await other.load_campaigns(write(tmp_path / "v2", later), actor="alice")

    await asyncio.gather(Scheduler(one).tick(), reload())
    monkeypatch.setattr(events_module, "queue_audience", real)
    status = (await event_row(one, "vote-closing")).status
    await Scheduler(one).tick()
    queued = await rows(one, "event:%:vote-closing:%")
    assert (status, len(queued)) == ("done", 3), [r.idempotency_key for r in queued]


# 4. A reminder declared with the id of the nudges' row.
async def test_a_reminder_called_unfinished_ballots(village: App, tmp_path: Path) -> None:
    text = VILLAGE.replace("slug: village", "slug: hameau").replace("ballot:", """reminders:
  - {id: unfinished-ballots, when: vote.end - 1d, audience: not_voted, text: {fr: "Demain {campaign}"}}
ballot:""")
    from bot.errors import CampaignError

    with pytest.raises(CampaignError, match="'unfinished-ballots' is Votz's own"):
        await village.load_campaigns(write(tmp_path / "h", text, "hameau.yaml"))


# 5. DST: "vote.end - 2d" on a moment is 48 h of UTC, not two days earlier at the same hour.
def test_a_day_offset_keeps_the_hour_across_a_dst_change() -> None:
    raw = {"slug": "dst", "kind": "poll", "title": {"fr": "T"}, "summary": {"fr": "S"},
           "phases": {"vote": {"start": "2026-03-20T08:00", "end": "2026-03-30T18:00"}}}
    campaign = parse_campaign(raw, file="dst.yaml", today=T0.date())
    closing = next(e for e in campaign.events if e.id == "vote-closing")
    from bot.domain.region import PARIS
    due = closing.due(campaign)
    assert due is not None
    assert due.astimezone(PARIS).hour == 18, due.astimezone(PARIS)


# 6. A forced phase is undone by the next `campaigns load` of the same file, and the results,
#    already pushed, are planned (and pushed) again.
async def test_results_are_pushed_once_even_after_a_forced_phase_and_a_reload(
        village: App, clock: FixedClock, tmp_path: Path) -> None:
    voter = await add_person(village, "+33600001101")
    await cast(village, voter, proposal_ids(village)[:1])
    clock.now = T0 + timedelta(days=1)
    await Scheduler(village).tick()
    await staff_campaigns.force_phase(village.db, "village", staff_campaigns.Phase.RESULTS,
                                      clock.now, actor="claire", reason="fin anticipée",
                                      grace=timedelta(hours=6))
    await Scheduler(village).tick()
    assert len(await rows(village, "event:%:results:%")) == 1
    clock.now += timedelta(hours=1)
    await village.load_campaigns(write(tmp_path / "again", VILLAGE))  # e.g. a routine deploy
    clock.now = datetime(2026, 3, 21, 8, 0, tzinfo=UTC)  # the file's results date
    await Scheduler(village).tick()
    assert len(await rows(village, "event:%:results:%")) == 1


# --- cases that make mutations of the scheduler visible ----------------------------------


async def test_quiet_before_close_alone_stops_a_first_nudge(village: App,
                                                            clock: FixedClock) -> None:
    """Kills mutation (h): never nudged before (no 24 h gap in play)."""
    person = await add_person(village, "+33600000802")
    campaign = village.pipeline.catalog.by_slug("village")
    assert campaign is not None
    await village.db.run(lambda conn: conn.execute(insert(ballot_drafts).values(
        participant_id=person, campaign_id=campaign.id,
        updated_at=VOTE_END - timedelta(hours=9))))
    clock.now = VOTE_END - timedelta(hours=5)
    await Scheduler(village).tick()
    assert await rows(village, "nudge:%") == []


async def test_a_departements_top_cell_under_5_is_hidden_even_with_5_voters(
        village: App, clock: FixedClock) -> None:
    """Kills mutation (i): 6 voters in 31, but the top proposal has 3 votes."""
    first, second, third = proposal_ids(village)
    pids = [await add_person(village, f"+336000031{n:02d}", dep="31") for n in range(6)]
    for pid, code in zip(pids, [first, first, first, second, second, third], strict=True):
        await cast(village, pid, [code], dep="31")
    clock.now = datetime(2026, 3, 21, 8, 0, tzinfo=UTC)
    await Scheduler(village).tick()
    pushed = await rows(village, "event:%:results:%")
    hidden = village.i18n["fr"]("event.results_local_hidden", dep="31")
    assert pushed and all(hidden in r.text for r in pushed), pushed[0].text


async def test_a_bulk_row_waiting_for_its_campaign_window_does_not_hold_a_reply(
        village: App, clock: FixedClock, tmp_path: Path) -> None:
    """Kills mutation (d1): the channel window is open, the campaign's is not."""
    narrow = VILLAGE.replace("ballot:", 'sending_window: {sms: "mon-fri 10:00-12:00"}\nballot:')
    await village.load_campaigns(write(tmp_path / "narrow", narrow))
    await add_person(village, "+33600001301")
    clock.now = CLOSING_DUE - timedelta(hours=2)  # Wednesday 16:00: SMS window open
    clock.now = CLOSING_DUE
    await Scheduler(village).tick()  # held until Thursday 10:00
    clock.now = datetime(2026, 3, 18, 18, 0, tzinfo=UTC)  # 19:00, SMS window still open
    await village.db.run(lambda conn: conn.execute(insert(outbox).values(**queue_values(
        participant_id=None, channel="sms", address="+33600001301", reply=Reply("Réponse"),
        now=clock.now))))
    claimed = await village.db.run(lambda conn: claim(conn, "sms", "t", clock.now, limit=20))
    assert [i.reply.text for i in claimed] == ["Réponse"]


@pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_two_schedulers_fire_an_event_once(
        two_processes: tuple[App, App], monkeypatch: pytest.MonkeyPatch) -> None:
    """Kills mutation (b): the event is fired (marked done, counted) by one process only."""
    one, other = two_processes
    for n in range(3):
        await add_person(one, f"+3360000091{n}")
    slow_queueing(monkeypatch, 0.5)
    ticks = await asyncio.gather(Scheduler(one).tick(), Scheduler(other).tick())
    fired = [f for t in ticks for f in t.fired if f.event == "vote-closing"]
    assert len(fired) == 1
    assert (await event_row(one, "vote-closing")).queued == 3
