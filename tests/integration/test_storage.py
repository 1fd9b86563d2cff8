"""Storage on SQLite and PostgreSQL: persistence, uniqueness, de-duplication, the outbox."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from bot.app import App
from bot.channels.base import Inbound, PermanentSendError, Reply, SendResult, TransientSendError
from bot.delivery.outbox import (
    LEASE,
    MAX_ATTEMPTS,
    OutboxStatus,
    claim,
    mark_retry,
    mark_sent,
    queue_values,
    release_claims,
)
from bot.domain.results import tally
from bot.errors import FrozenRulesError
from bot.store.db import Database
from bot.store.repo import (
    campaign_proposals,
    counted_ballots,
    get_campaign,
    moderate,
)
from bot.store.tables import ballots, outbox, participants
from tests.conftest import FixedClock, Person, RecordingSender, code_of


async def second_app(app: App, sender: RecordingSender, clock: FixedClock,
                     schema: str | None) -> App:
    other = await App.start(app.settings, senders={"console": sender}, clock=clock,
                           schema=schema)
    await other.refresh_catalog()
    return other


async def test_conversation_survives_a_restart(app: App, sender: RecordingSender,
                                               clock: FixedClock,
                                               database: tuple[str, str | None]) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    await me.say("Budget des lycées")
    again = await second_app(app, sender, clock, database[1])
    try:
        later = Person(again, sender)
        garden = code_of(again, "Jardin partagé")
        # 1: the list's first line, as numbered before the restart.
        assert (await later.say("1")).startswith(f"Votre vote :\n{garden}")
        assert "A voté" in await later.say("1")
    finally:
        await again.close()


async def test_simultaneous_confirmations_yield_one_ballot(
    app: App, sender: RecordingSender, clock: FixedClock, database: tuple[str, str | None]
) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say(f"VOTE {code_of(app, 'Jardin partagé')}")
    other = await second_app(app, sender, clock, database[1])
    try:
        message = Inbound(channel="console", address=me.address, text="1",
                          received_at=clock())
        await asyncio.gather(app.pipeline.handle(message), other.pipeline.handle(message))
    finally:
        await other.close()
    rows = await app.db.run(lambda c: c.execute(select(ballots.c.choices)).all())
    assert len(rows) == 1


async def test_database_refuses_a_second_ballot_row(app: App, sender: RecordingSender,
                                                    clock: FixedClock) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say(f"VOTE {code_of(app, 'Jardin partagé')}")
    await me.say("1")

    def duplicate(conn):  # type: ignore[no-untyped-def]
        row = conn.execute(select(ballots)).mappings().one()
        conn.execute(ballots.insert().values(**{k: v for k, v in row.items() if k != "id"}))

    with pytest.raises(IntegrityError):
        await app.db.run(duplicate)


async def test_concurrent_duplicate_deliveries_are_processed_once(
    app: App, sender: RecordingSender, clock: FixedClock, database: tuple[str, str | None]
) -> None:
    other = await second_app(app, sender, clock, database[1])
    try:
        message = Inbound(channel="sms", address="+33611111111", text="bonjour",
                          provider_id="SM0001", received_at=clock())
        results = await asyncio.gather(app.pipeline.handle(message),
                                       other.pipeline.handle(message))
    finally:
        await other.close()
    assert sorted(r.duplicate for r in results) == [False, True]
    count = await app.db.run(lambda c: len(c.execute(select(outbox.c.id)).all()))
    assert count == 1


async def test_erasure_keeps_closed_ballots_anonymous(app: App, sender: RecordingSender,
                                                     clock: FixedClock) -> None:
    me = Person(app, sender)
    await me.onboard(postcode="09000")
    await me.say(f"VOTE {code_of(app, 'Jardin partagé')}")
    await me.say("1")
    clock.advance(days=11)
    await me.say("4")
    await me.say("1")
    await me.say("1")

    def read(conn):  # type: ignore[no-untyped-def]
        return (conn.execute(select(participants)).all(),
                [tuple(r) for r in conn.execute(select(ballots.c.participant_id,
                                                       ballots.c.departement))])

    people, kept = await app.db.run(read)
    assert people == []
    assert kept == [(None, "09")]


class FlakySender:
    rate = 0.0  # no pacing
    channel = "console"

    def __init__(self, errors: list[Exception | None]) -> None:
        self.errors = errors

    async def send(self, address: str, reply: Reply) -> SendResult:
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        return SendResult(provider_id="ok-1")

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None


async def _queue_one(app: App, address: str = "+33612345678", text: str = "Bonjour") -> int:
    def queue(conn):  # type: ignore[no-untyped-def]
        person = conn.execute(select(participants.c.id).where(
            participants.c.address == address)).scalar()
        if person is None:
            person = conn.execute(participants.insert().values(
                channel="console", address=address, locale="fr", status="active",
                created_at=app.clock()).returning(participants.c.id)).scalar_one()
        return conn.execute(outbox.insert().values(**queue_values(
            participant_id=person, channel="console", address=address,
            reply=Reply(text), now=app.clock())).returning(outbox.c.id)).scalar_one()
    return await app.db.run(queue)


async def _row(app: App, row_id: int):  # type: ignore[no-untyped-def]
    return await app.db.run(lambda c: c.execute(
        select(outbox).where(outbox.c.id == row_id)).mappings().one())


async def test_outbox_retries_transient_errors_with_backoff(app: App, clock: FixedClock) -> None:
    app.dispatcher.add_sender("console", FlakySender([TransientSendError("timeout"), None]))
    row_id = await _queue_one(app)
    assert await app.dispatcher.run_once() == 1
    row = await _row(app, row_id)
    assert row["status"] == OutboxStatus.QUEUED
    assert row["attempts"] == 1
    assert row["failure_reason"] == "timeout"
    assert row["next_attempt_at"] == clock() + timedelta(seconds=2)
    assert await app.dispatcher.run_once() == 0  # not due yet
    clock.advance(seconds=2)
    assert await app.dispatcher.run_once() == 1
    row = await _row(app, row_id)
    assert (row["status"], row["provider_id"], row["attempts"]) == ("sent", "ok-1", 2)


async def test_outbox_honours_retry_after_and_gives_up(app: App, clock: FixedClock) -> None:
    errors: list[Exception | None] = [TransientSendError("429", retry_after=30)]
    errors += [TransientSendError("5xx") for _ in range(MAX_ATTEMPTS)]
    app.dispatcher.add_sender("console", FlakySender(errors))
    row_id = await _queue_one(app)
    await app.dispatcher.run_once()
    assert (await _row(app, row_id))["next_attempt_at"] == clock() + timedelta(seconds=30)
    for _ in range(MAX_ATTEMPTS):
        clock.advance(seconds=600)
        await app.dispatcher.run_once()
    row = await _row(app, row_id)
    assert row["status"] == OutboxStatus.FAILED
    assert row["failure_reason"].startswith(f"gave up after {MAX_ATTEMPTS} attempts")


async def test_outbox_permanent_error_fails_at_once(app: App) -> None:
    app.dispatcher.add_sender("console", FlakySender([PermanentSendError("blocked")]))
    row_id = await _queue_one(app)
    await app.dispatcher.run_once()
    row = await _row(app, row_id)
    assert (row["status"], row["failure_reason"], row["attempts"]) == ("failed", "blocked", 1)


async def test_outbox_claims_are_exclusive_and_lost_claims_come_back(app: App,
                                                                     clock: FixedClock) -> None:
    for n in range(3):
        await _queue_one(app, address=f"+3361234567{n}")
    first = await app.db.run(lambda c: claim(c, "console", "a:1", clock(), limit=2))
    second = await app.db.run(lambda c: claim(c, "console", "b:1", clock(), limit=2))
    assert len(first) == 2
    assert len(second) == 1
    assert {i.id for i in first}.isdisjoint({i.id for i in second})
    # Process a:1 restarts: it knows its claims and gives them back at once.
    assert await app.db.run(lambda c: release_claims(c, "a:1")) == 2
    again = await app.db.run(lambda c: claim(c, "console", "a:1", clock(), limit=10))
    assert {i.id for i in again} == {i.id for i in first}
    for item in again:
        await app.db.run(lambda c, i=item.id: mark_sent(c, i, None, clock()))
    # Process b:1 died and never came back: its claim returns after the lease.
    clock.advance(seconds=LEASE.total_seconds() - 1)
    assert await app.db.run(lambda c: claim(c, "console", "a:1", clock(), limit=10)) == []
    clock.advance(seconds=2)
    taken_over = await app.db.run(lambda c: claim(c, "console", "a:1", clock(), limit=10))
    assert [i.id for i in taken_over] == [i.id for i in second]


async def test_one_persons_messages_are_claimed_one_at_a_time_in_order(
        app: App, clock: FixedClock) -> None:
    ids = [await _queue_one(app, text=f"message {n}") for n in range(3)]
    other = await _queue_one(app, address="+33699999999")
    claimed = await app.db.run(lambda c: claim(c, "console", "a:1", clock(), limit=10))
    assert [i.id for i in claimed] == [ids[0], other]  # the oldest of each person
    # While the first is being sent, no other process may take the second.
    assert await app.db.run(lambda c: claim(c, "console", "b:1", clock(), limit=10)) == []
    await app.db.run(lambda c: mark_sent(c, ids[0], "p-1", clock()))
    claimed = await app.db.run(lambda c: claim(c, "console", "b:1", clock(), limit=10))
    assert [i.id for i in claimed] == [ids[1]]
    # A transient failure keeps the order: the third waits for the second's retry.
    item = claimed[0]
    await app.db.run(lambda c: mark_retry(c, item, "timeout", clock()))
    assert await app.db.run(lambda c: claim(c, "console", "b:1", clock(), limit=10)) == []
    clock.advance(seconds=5)
    claimed = await app.db.run(lambda c: claim(c, "console", "b:1", clock(), limit=10))
    assert [i.id for i in claimed] == [ids[1]]


FIXED = """slug: fixed
kind: participatory_budget
title: {fr: Budget aux dates fixes}
summary: {fr: Dates réelles.}
envelope: 1000
phases:
  vote: {start: VOTE_START, end: 2026-03-31}
ballot: {method: up_to, max_choices: 2}
seed_proposals:
  - {ref: a, title: {fr: Projet A}, cost: 500}
"""


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("max_choices: 2", "max_choices: 1", "ballot"),
        ("envelope: 1000", "envelope: 2000", "envelope"),
        ("kind: participatory_budget", "kind: participatory_budget\naudience: {departements: ['48']}",
         "audience"),
        ("{start: VOTE_START,", "{start: 2026-03-20,", "phases.vote.start"),
        ("cost: 500}", "cost: 900}", "seed_proposals[a]"),
        ("cost: 500}", "cost: 500}\n  - {ref: b, title: {fr: B}, cost: 1}", "seed_proposals[b]"),
    ],
)
async def test_rules_are_frozen_once_voting_opened(app: App, tmp_path: Path, old: str,
                                                   new: str, what: str) -> None:
    path = tmp_path / "fixed.yaml"
    path.write_text(FIXED.replace("VOTE_START", "2026-03-05"))  # open since 5 March
    await app.load_campaigns(path)
    path.write_text(FIXED.replace(old, new).replace("VOTE_START", "2026-03-05"))
    with pytest.raises(FrozenRulesError, match=re.escape(what)):
        await app.load_campaigns(path)
    extended = FIXED.replace("VOTE_START", "2026-03-05").replace("2026-03-31", "2026-04-10")
    path.write_text(extended)
    await app.load_campaigns(path)  # extending the vote is allowed


async def test_rules_may_change_before_voting_opens(app: App, tmp_path: Path) -> None:
    path = tmp_path / "fixed.yaml"
    path.write_text(FIXED.replace("VOTE_START", "2026-03-20"))
    await app.load_campaigns(path)
    path.write_text(FIXED.replace("VOTE_START", "2026-03-20").replace("cost: 500", "cost: 700")
                    .replace("max_choices: 2", "max_choices: 1"))
    await app.load_campaigns(path)
    campaign = app.pipeline.catalog.by_slug("fixed")
    assert campaign is not None and campaign.ballot.max_choices == 1
    assert [p.cost for p in app.pipeline.catalog.published(campaign.id)] == [700]


async def test_results_from_the_database(app: App, sender: RecordingSender) -> None:
    garden, bikes = code_of(app, "Jardin partagé"), code_of(app, "Vélos en prêt")
    for n in range(6):
        person = Person(app, sender, address=f"+3360000010{n}")
        await person.onboard(postcode="31000" if n < 5 else "48000")
        await person.say(f"VOTE {garden} {bikes}" if n % 2 else f"VOTE {garden}")
        await person.say("1")

    def query(conn):  # type: ignore[no-untyped-def]
        campaign = get_campaign(conn, "pick")
        return tally(campaign, campaign_proposals(conn, campaign.id),
                     counted_ballots(conn, campaign.id))

    results = await app.db.run(query)
    assert results.ballots == 6
    assert [(line.proposal.code, line.votes) for line in results.lines][:2] == [
        (garden, 6), (bikes, 3)]
    assert results.by_departement == {"31": None, "48": None}  # 48 alone would be derivable
    assert results.envelope_used == 60000


async def test_moderation_publishes_a_proposal_for_voting(app: App,
                                                          sender: RecordingSender) -> None:
    author = Person(app, sender, address="+33600000077")
    await author.onboard(age="2")
    await author.say("2")
    await author.say("Un cinéma de plein air l'été")
    code = (await author.say("1")).split("code ")[1].split(".")[0]
    assert await app.db.run(lambda c: moderate(c, [int(code[1:])], "published")) == 1
    await app.refresh_catalog()
    assert code in {p.code for p in app.pipeline.catalog.proposals.values()}


async def test_migrations_are_idempotent(app: App, clock: FixedClock,
                                         database: tuple[str, str | None]) -> None:
    settings = replace(app.settings)
    again = await App.start(settings, clock=clock, schema=database[1])
    await again.close()


async def test_broadcast_preview_and_idempotent_send(app: App, sender: RecordingSender) -> None:
    from bot.staff.broadcasts import Audience, compose, create, preview

    sms = RecordingSender("sms")
    app.dispatcher.add_sender("sms", sms)
    people = [Person(app, sms, address=f"+3360000020{n}", channel="sms") for n in range(4)]
    for n, person in enumerate(people):
        await person.onboard(age="2" if n < 2 else "4", language="3" if n == 0 else "1")
    await people[3].say("STOP")
    await Person(app, sender, address="console-person").onboard()  # never queued to
    texts = {"fr": "Nouvelle campagne : « Tes idées » – réponds vite !",
             "oc": "Novèla campanha : respondètz lèu !"}
    youth = Audience(campaign="ideas")  # for 15-25 year olds
    seen = await app.db.run(lambda c: preview(c, youth, texts))
    assert seen.recipients == {"sms": 2}
    assert (seen.costs["sms"]["fr"].encoding, seen.costs["sms"]["fr"].segments) == ("GSM-7", 1)
    everyone = await app.db.run(lambda c: preview(c, Audience(), texts))
    assert everyone.recipients == {"sms": 3}  # consented and not stopped, not the console

    async def queue() -> int:
        composed = await compose(app.db, texts, youth, now=app.clock())
        made = await create(app.db, composed, by="test", now=app.clock(), i18n=app.i18n,
                            windows=app.dispatcher.windows)
        return made.total

    queued = await queue()
    again = await queue()  # the same broadcast, the same day: the same one, queued once
    assert (queued, again) == (2, 2)
    assert len(await app.db.run(lambda c: c.execute(
        select(outbox).where(outbox.c.broadcast_id.is_not(None))).all())) == 2
    before = len(sms.sent)
    await app.dispatcher.drain()  # T0 is a Tuesday at 11:00: inside the SMS window
    got = {address: reply.text for address, reply in sms.sent[before:]}
    hint = {loc: "\n" + app.i18n[loc]("event.hint") for loc in ("fr", "oc")}
    assert got == {"+33600000200": texts["oc"] + hint["oc"],
                   "+33600000201": texts["fr"] + hint["fr"]}  # the opt-out hint, first time


async def test_hot_statements_read_the_same_through_the_driver(app: App,
                                                               sender: RecordingSender) -> None:
    """On SQLite the hot path bypasses SQLAlchemy's execution: same rows, same types."""
    await Person(app, sender).onboard()

    def both(conn):  # type: ignore[no-untyped-def]
        sql = app.pipeline.statements(conn)
        who = {"channel": "console", "address": "+33600000001"}
        direct = sql.hot.first(conn, "person", who)
        through = conn.execute(sql.person, who).first()
        return sql.hot.direct, tuple(direct), tuple(through), direct.consent_at, direct.step

    direct_path, direct, through, consent_at, step = await app.db.run(both)
    assert direct_path == (app.db.dialect == "sqlite")
    assert direct == through
    assert consent_at.tzinfo is not None and step == "main.menu"


NOTES = Table("group_notes", MetaData(), Column("n", Integer, primary_key=True),
              Column("blob", LargeBinary))


def note(n: int, *, value: int | None = None, blob: bytes = b"",
         error: BaseException | None = None, duplicate: bool = False
         ) -> Callable[[Connection], int]:
    """A unit of work that writes note `n` (twice if `duplicate`), then maybe raises."""
    def fn(conn: Connection) -> int:
        conn.execute(insert(NOTES).values(n=n, blob=blob))
        if duplicate:
            conn.execute(insert(NOTES).values(n=n))  # the database refuses
        if error is not None:
            raise error
        return n if value is None else value
    return fn


def stored_notes(conn: Connection) -> list[int]:
    return sorted(conn.execute(select(NOTES.c.n)).scalars())


async def test_grouped_units_share_commits_and_fail_alone(
        database: tuple[str, str | None]) -> None:
    """Under a burst, units share a commit (SQLite); one that raises is rolled back alone."""
    url, schema = database
    db = Database(url, schema=schema)
    commits = 0
    try:
        await db.run(lambda conn: NOTES.create(conn))
        engine = db._sync if db._sync is not None else db._async.sync_engine  # type: ignore[union-attr]

        @event.listens_for(engine, "commit")
        def _count(conn: Connection) -> None:
            nonlocal commits
            commits += 1

        def unit(n: int) -> Callable[[Connection], int]:
            return note(n, value=n * 10, duplicate=n == 3,
                        error=ValueError("unit 7 breaks after writing") if n == 7 else None)

        outcomes = await asyncio.gather(*(db.run_grouped(unit(n)) for n in range(20)),
                                        return_exceptions=True)
        assert [o for o in outcomes if not isinstance(o, Exception)] == \
            [n * 10 for n in range(20) if n not in (3, 7)]
        assert isinstance(outcomes[3], IntegrityError)
        assert isinstance(outcomes[7], ValueError)
        grouped_commits = commits
        stored = await db.run(stored_notes)
        assert stored == [n for n in range(20) if n not in (3, 7)]
        if db.dialect == "sqlite" and db._executor is not None:
            assert grouped_commits < 18  # several units per commit
        else:
            assert grouped_commits == 18  # one transaction each (PostgreSQL commits concurrently)

        # A commit that fails loses the whole group, and every unit is told.
        @event.listens_for(engine, "commit")
        def _fail(conn: Connection) -> None:
            raise OSError("disk full")

        outcomes = await asyncio.gather(*(db.run_grouped(unit(n)) for n in range(100, 105)),
                                        return_exceptions=True)
        assert all(isinstance(o, OSError) for o in outcomes)
        event.remove(engine, "commit", _fail)
        count = await db.run(lambda conn: conn.execute(
            select(func.count()).select_from(NOTES).where(NOTES.c.n >= 100)).scalar_one())
        assert count == 0
    finally:
        await db.close()


async def test_group_commit_edge_cases(tmp_path: Path) -> None:
    """SQLite: odd exceptions, a full disk and closing with units waiting lose no waiter."""
    db = Database(f"sqlite:///{tmp_path / 'group.db'}")

    async def stored() -> list[int]:
        return await db.run(stored_notes)

    await db.run(lambda conn: NOTES.create(conn))
    # StopIteration cannot be set on an asyncio future: the others must still be answered.
    outcomes = await asyncio.wait_for(asyncio.gather(
        *(db.run_grouped(note(n, error=StopIteration() if n == 3 else None))
          for n in range(10)), return_exceptions=True), timeout=10)
    assert isinstance(outcomes[3], RuntimeError)
    assert [o for o in outcomes if not isinstance(o, BaseException)] == \
        [n for n in range(10) if n != 3]
    assert await stored() == [n for n in range(10) if n != 3]

    # A full disk rolls the whole transaction back: every unit hears the real cause.
    pages = await db.run(lambda c: c.execute(text("PRAGMA page_count")).scalar_one())
    await db.run(lambda c: c.exec_driver_sql(f"PRAGMA max_page_count={pages + 2}"))
    outcomes = await asyncio.gather(
        *(db.run_grouped(note(n, blob=b"x" * 200_000 if n == 13 else b"")) for n in range(10, 20)),
        return_exceptions=True)
    assert all("full" in str(o) for o in outcomes), outcomes
    assert await stored() == [n for n in range(10) if n != 3]
    await db.run(lambda c: c.exec_driver_sql("PRAGMA max_page_count=1073741823"))

    # Closing with more than a group's worth waiting: all of them commit and are answered.
    slow = asyncio.ensure_future(db.run(lambda c: time.sleep(0.2)))
    await asyncio.sleep(0.05)
    waiting = [asyncio.ensure_future(db.run_grouped(note(n))) for n in range(100, 300)]
    await asyncio.sleep(0)
    await slow
    await asyncio.wait_for(db.close(), timeout=10)
    assert [f.result() for f in waiting] == list(range(100, 300))
    with pytest.raises(RuntimeError, match="closed"):
        await db.run_grouped(note(999))
    again = Database(f"sqlite:///{tmp_path / 'group.db'}")
    try:
        assert (await again.run(stored_notes))[-1] == 299
    finally:
        await again.close()
