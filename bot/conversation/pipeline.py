"""The pipeline: one inbound message in, state and replies out, in one transaction.

Order, for every channel:
1. per-conversation lock (in process) so one person's messages are handled in order;
2. in one database transaction (one thread hop on SQLite; under a burst, several people's
   messages share one commit, each in its own savepoint — `Database.run_grouped`):
   dedupe by provider id → identify the participant (locked FOR UPDATE on PostgreSQL)
   → load conversation state → engine (pure) → a ballot being cast: are its campaign and
   choices still as the catalog the engine saw? if not, reload the catalog and decide again
   → persist state, domain writes and the reply in the outbox;
3. wake the dispatcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)

from bot.channels.base import Inbound, Reply, ReplyChoice
from bot.channels.registry import capabilities
from bot.conversation.effects import (
    CastBallot,
    DropDraft,
    Erase,
    Follow,
    GiveConsent,
    ReportProposal,
    SetLocale,
    SetPhone,
    SetProfile,
    SetReminders,
    SetStatus,
    StartBallot,
    SubmitProposal,
    Unregister,
)
from bot.conversation.engine import (
    Context,
    Decision,
    Engine,
    EngineSettings,
    State,
    render,
)
from bot.delivery.outbox import queue_values
from bot.domain.ballots import proposal_code
from bot.domain.campaigns import Campaign
from bot.domain.catalog import Catalog
from bot.domain.participants import Profile, Status
from bot.i18n import LOCALES, I18n
from bot.staff.moderation import report
from bot.store.compiled import Runner
from bot.store.db import Database
from bot.store.repo import (
    ProposalStatus,
    Tallies,
    campaign_from_json,
    erase_participant,
    insert_for,
    load_catalog,
    proposal_title,
    set_participant_status,
)
from bot.store.tables import (
    ballot_drafts,
    ballots,
    campaigns,
    conversations,
    follows,
    inbound_seen,
    outbox,
    participants,
    proposals,
)

log = logging.getLogger("votz.pipeline")
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling one message did (for tests, logs and benchmarks)."""

    duplicate: bool = False
    reply: Reply | None = None
    participant_id: int | None = None
    hidden: tuple[int, ...] = ()  # proposals this message's report hid (SIGNALER P12)
    notice: str = ""  # a short notice answering a press, not queued (a toast)


class Statements:
    """The hot path's statements, built once per dialect with bound parameters.

    Building a statement (`.values()`, `.where()`) costs more than executing it on SQLite;
    prebuilt statements let SQLAlchemy reuse the compiled form from its cache.
    """

    def __init__(self, conn: Connection) -> None:
        postgres = conn.dialect.name == "postgresql"
        b = bindparam
        self.seen = insert_for(conn, inbound_seen).values(
            channel=b("channel"), provider_id=b("provider_id"), received_at=b("now"),
        ).on_conflict_do_nothing()
        person = (
            select(participants, conversations.c.step, conversations.c.data,
                   conversations.c.updated_at.label("state_at"))
            .outerjoin(conversations, conversations.c.participant_id == participants.c.id)
            .where(participants.c.channel == b("channel"), participants.c.address == b("address"))
        )
        self.person = person
        # PostgreSQL: the participant is locked by a statement of its own, before the state
        # is read. Locked in the same statement, a second message waiting for the lock would
        # then read the conversation as it was before the first one committed (READ
        # COMMITTED re-reads only the locked row), and act on a stale step.
        self.lock = (select(participants.c.id).where(
            participants.c.channel == b("channel"), participants.c.address == b("address"))
            .with_for_update() if postgres else None)
        self.new_person = insert_for(conn, participants).values(
            channel=b("channel"), address=b("address"), locale=b("locale"),
            status=Status.ACTIVE.value, created_at=b("now"), phone=b("phone"),
        ).on_conflict_do_nothing()
        # What the person did, per campaign, in one statement (one round trip, not three):
        # ("b", campaign, "3,7", 0) their ballot, ("c", campaign, "", n) how many ideas they
        # proposed, ("f", campaign, "", 1|0) whether they follow it. Each part is an index
        # lookup by participant.
        # (Constants are written into the SQL: the driver gets only the participant's id.)
        k = literal_column
        self.mine = union_all(
            select(k("'b'"), ballots.c.campaign_id, ballots.c.choices, k("0"))
            .where(ballots.c.participant_id == b("pid")),
            select(k("'c'"), proposals.c.campaign_id, k("''"), func.count())
            .where(proposals.c.author_id == b("pid")).group_by(proposals.c.campaign_id),
            select(k("'f'"), follows.c.campaign_id, k("''"),
                   case((follows.c.following.is_(True), k("1")), else_=k("0")))
            .where(follows.c.participant_id == b("pid")))
        follow = insert_for(conn, follows).values(
            participant_id=b("pid"), campaign_id=b("campaign_id"), following=b("following"),
            updated_at=b("now"))
        self.follow = follow.on_conflict_do_update(
            index_elements=["participant_id", "campaign_id"],
            set_={"following": follow.excluded.following,
                  "updated_at": follow.excluded.updated_at})
        # A ballot under way: dated now, nudged afresh (the scheduler counts `nudges` from 0);
        # when it was last nudged stays known.
        draft = insert_for(conn, ballot_drafts).values(
            participant_id=b("pid"), campaign_id=b("campaign_id"), updated_at=b("now"), nudges=0)
        self.start_draft = draft.on_conflict_do_update(
            index_elements=["participant_id", "campaign_id"],
            set_={"updated_at": draft.excluded.updated_at, "nudges": 0})
        self.drop_draft = delete(ballot_drafts).where(
            ballot_drafts.c.participant_id == b("pid"),
            ballot_drafts.c.campaign_id == b("campaign_id"))
        state = insert_for(conn, conversations).values(
            participant_id=b("pid"), step=b("step"), data=b("data"), updated_at=b("now"))
        self.save_state = state.on_conflict_do_update(
            index_elements=["participant_id"],
            set_={"step": state.excluded.step, "data": state.excluded.data,
                  "updated_at": state.excluded.updated_at},
        )
        self.update_person = update(participants).where(participants.c.id == b("pid"))
        self.new_proposal = proposals.insert().values(
            campaign_id=b("campaign_id"), author_id=b("pid"), title=b("title"),
            status=ProposalStatus.SUBMITTED, created_at=b("now"),
        ).returning(proposals.c.id)
        ballot = insert_for(conn, ballots).values(
            campaign_id=b("campaign_id"), participant_id=b("pid"), choices=b("choices"),
            age_bracket=b("age_bracket"), departement=b("departement"), voter=b("voter"),
            created_at=b("now"), updated_at=b("now"))
        # One ballot per voter: the same phone on SMS and Telegram replaces, never adds. A
        # new ballot is inserted; else the existing one (committed, even by a concurrent
        # transaction the insert waited for) is read, locked and replaced.
        self.cast_new = ballot.on_conflict_do_nothing().returning(ballots.c.id)
        # The voter's ballot, and this participant's (the same, unless their number changed).
        existing = select(ballots.c.id, ballots.c.participant_id, ballots.c.voter).where(
            ballots.c.campaign_id == b("campaign_id"),
            or_(ballots.c.voter == b("voter"), ballots.c.participant_id == b("pid")))
        self.cast_existing = existing.with_for_update() if postgres else existing
        self.cast_replace = update(ballots).where(ballots.c.id == b("ballot_id")).values(
            choices=b("new_choices"), age_bracket=b("new_age_bracket"),
            departement=b("new_departement"), participant_id=b("new_pid"),
            voter=b("new_voter"), updated_at=b("new_now"))
        self.cast_drop = delete(ballots).where(ballots.c.id == b("ballot_id"))
        # A ballot being cast: are its campaign and its choices still as the catalog says?
        # (One choice at a time: an expanding IN is compiled again at every execution.)
        self.campaign_definition = select(campaigns.c.definition).where(
            campaigns.c.id == b("campaign_id"))
        self.chosen = select(proposals.c.campaign_id, proposals.c.status, proposals.c.cost
                             ).where(proposals.c.id == b("proposal_id"))
        self.someone = select(participants.c.id, participants.c.channel,
                              participants.c.address, participants.c.locale,
                              participants.c.status).where(participants.c.id == b("pid"))
        self.queue = outbox.insert().values(
            {name: b(name) for name in queue_values(
                participant_id=None, channel="", address="", reply=Reply(""),
                now=datetime.now(UTC))})
        # Run on every message: compiled once and, on SQLite, executed on the driver.
        self.hot = Runner(conn, {"seen": self.seen, "person": self.person,
                                 "mine": self.mine,
                                 "save_state": self.save_state, "queue": self.queue,
                                 # and on every ballot cast
                                 "campaign_definition": self.campaign_definition,
                                 "chosen": self.chosen})


class _Turnstile:
    """One conversation's lock and how many handlers hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Pipeline:
    def __init__(
        self,
        db: Database,
        engine: Engine,
        i18n: I18n,
        settings: EngineSettings,
        catalog: Catalog,
        *,
        clock: Clock = utcnow,
        default_locale: str = "fr",
        on_queued: Callable[[], None] | None = None,
        tallies: Tallies | None = None,
    ) -> None:
        self.db = db
        self.tallies = tallies if tallies is not None else Tallies()  # kept between reloads
        self.engine = engine
        self.i18n = i18n
        self.settings = settings
        self.catalog = catalog
        self.clock = clock
        self.default_locale = default_locale
        self.on_queued = on_queued
        self._locks: dict[tuple[str, str], _Turnstile] = {}
        self._statements: dict[str, Statements] = {}
        # Campaign id → (stored definition, the catalog's campaign found equal to it).
        self._confirmed: dict[int, tuple[str, Campaign]] = {}
        # Called in the transaction that stores a new proposal (its id): the staff chat
        # queues it to the moderators (`bot.staff.chat`, wired by the server).
        self.on_proposal: Callable[[Connection, int, datetime], object] | None = None

    def statements(self, conn: Connection) -> Statements:
        found = self._statements.get(conn.dialect.name)
        if found is None:
            found = self._statements[conn.dialect.name] = Statements(conn)
        return found

    async def handle(self, inbound: Inbound) -> Handled:
        key = (inbound.channel, inbound.address)
        turnstile = self._locks.get(key)
        if turnstile is None:
            turnstile = self._locks[key] = _Turnstile()
        turnstile.users += 1
        try:
            async with turnstile.lock:
                handled = await self.db.run_grouped(lambda conn: self.process(conn, inbound))
        finally:
            turnstile.users -= 1
            if turnstile.users == 0:  # nobody holds or waits for it: forget it
                self._locks.pop(key, None)
        if handled.hidden:  # committed: out of sight now, not at the next catalog reload
            self.catalog = self.catalog.without(handled.hidden)
        if handled.reply is not None and self.on_queued is not None:
            self.on_queued()
        return handled

    # --- the unit of work, run inside one transaction --------------------------------------

    def process(self, conn: Connection, inbound: Inbound) -> Handled:
        now = self.clock()
        sql = self.statements(conn)
        who = {"channel": inbound.channel, "address": inbound.address}
        hot = sql.hot
        if inbound.provider_id is not None:
            fresh = hot.execute(conn, "seen", {"channel": inbound.channel,
                                               "provider_id": inbound.provider_id, "now": now})
            if not fresh:
                return Handled(duplicate=True)

        if sql.lock is not None:
            conn.execute(sql.lock, who)
        row = hot.first(conn, "person", who)
        can = capabilities(inbound.channel)
        if row is None:
            locale = inbound.locale_hint if inbound.locale_hint in LOCALES else None
            # An SMS number is verified by the network: it is the person's phone.
            phone = inbound.address if can.verified_address else None
            conn.execute(sql.new_person, {**who, "locale": locale or self.default_locale,
                                          "now": now, "phone": phone})
            if sql.lock is not None:  # waits if another message created them meanwhile
                conn.execute(sql.lock, who)
            row = hot.first(conn, "person", who)
            assert row is not None
        profile = Profile(
            id=row.id, locale=row.locale, consent_at=row.consent_at,
            age_bracket=row.age_bracket, postal_code=row.postal_code,
            departement=row.departement, status=Status(row.status), phone=row.phone,
            reminders=bool(row.reminders),
        )
        state = None
        if row.step is not None:
            state = State(row.step, json.loads(row.data), row.state_at)
        ballots_by_campaign: dict[int, tuple[int, ...]] = {}
        counts: dict[int, int] = {}
        following: dict[int, bool] = {}
        if profile.consent_at is not None:
            for kind, campaign_id, choices, number in hot.all(conn, "mine", {"pid": profile.id}):
                if kind == "b":
                    ballots_by_campaign[campaign_id] = tuple(int(c) for c in choices.split(","))
                elif kind == "c":
                    counts[campaign_id] = number
                else:
                    following[campaign_id] = bool(number)
        ctx = Context(now=now, profile=profile, catalog=self.catalog, settings=self.settings,
                      i18n=self.i18n, ballots=ballots_by_campaign, proposal_counts=counts,
                      following=following,
                      page_chars=can.page_chars, page_segments=can.page_segments,
                      asks_contact=can.asks_contact,
                      buttons=can.buttons, verified_address=can.verified_address,
                      address=inbound.address)
        decision = self._decide(state, inbound, ctx)
        if any(not self._still_valid(conn, sql, e) for e in decision.effects
               if isinstance(e, CastBallot)):
            # The ballot was checked against this process's catalog, which another process
            # (a campaign reloaded, a proposal hidden) may have outdated: decide again on what
            # is stored now, in this transaction.
            log.info("conversation.catalog_stale participant=%s", profile.id)
            self.catalog = load_catalog(conn, now, self.tallies)
            decision = self._decide(state, inbound, dataclasses.replace(ctx, catalog=self.catalog))

        results = self._apply(conn, sql, decision, profile, now)
        erased = any(isinstance(e, Erase) for e in decision.effects)
        if any(isinstance(e, Unregister) for e in decision.effects):
            # Erased; back as after a first message (address, language), to read on.
            conn.execute(sql.new_person, {
                **who, "locale": decision.locale, "now": now,
                "phone": inbound.address if can.verified_address else None})
            row = hot.first(conn, "person", who)
            assert row is not None
            profile = dataclasses.replace(profile, id=row.id)
        if not erased and decision.state is not None:
            hot.execute(conn, "save_state", {
                "pid": profile.id, "step": decision.state.step, "now": now,
                "data": json.dumps(dict(decision.state.data), ensure_ascii=False)})
        hidden = tuple(results.get("hidden", ()))
        t = self.i18n[decision.locale]
        if decision.silent:
            # A press refused with a short notice (a toast): answered, nothing queued.
            notice = t.render(decision.toast) if decision.toast else ""
            return Handled(participant_id=profile.id, hidden=hidden, notice=notice)
        footer = t.render(decision.footer) if decision.footer else ""
        reply = Reply(
            render(decision, self.i18n, results),
            tuple(ReplyChoice(o.id, o.key, o.label, o.code) for o in decision.options),
            footer,
            decision.turn,
            t("vote.share_phone") if decision.ask_contact else "",
            # A selection's buttons: the pressed message is edited, not a new one sent.
            edit=(inbound.message_id or "") if decision.edit else "",
            clears="" if decision.edit else inbound.message_id or "",
        )
        status = next((e.status for e in reversed(decision.effects)
                       if isinstance(e, SetStatus)), profile.status)
        hot.execute(conn, "queue", queue_values(
            participant_id=None if erased else profile.id, channel=inbound.channel,
            address=inbound.address, reply=reply, now=now,
            # The engine answers a stopped person only what they asked (STOP's confirmation,
            # START, HELP): that answer leaves although they are stopped.
            unconditional=status is not Status.ACTIVE))
        return Handled(reply=reply, participant_id=None if erased else profile.id,
                       hidden=hidden)

    def _decide(self, state: State | None, inbound: Inbound, ctx: Context) -> Decision:
        try:
            return self.engine.advance(state, inbound, ctx)
        except Exception:
            # Never a dead end: a bug or a stale state must not leave someone stuck.
            log.exception("conversation.engine_error step=%s", state.step if state else None)
            return self.engine.recover(state, ctx)

    def _still_valid(self, conn: Connection, sql: Statements, ballot: CastBallot) -> bool:
        """Whether what the engine checked `ballot` against (the campaign, the chosen
        proposals) is still what is stored."""
        shown = self.catalog.by_id(ballot.campaign_id)
        row = sql.hot.first(conn, "campaign_definition", {"campaign_id": ballot.campaign_id})
        if shown is None or row is None:
            return False
        if self._confirmed.get(ballot.campaign_id) != (row.definition, shown):
            if campaign_from_json(row.definition, ballot.campaign_id) != shown:
                return False
            self._confirmed[ballot.campaign_id] = (row.definition, shown)
        for choice in ballot.choices:
            proposal = self.catalog.proposals.get(choice)
            stored = sql.hot.first(conn, "chosen", {"proposal_id": choice})
            if proposal is None or stored is None or (
                    stored.campaign_id, stored.status, stored.cost) != (
                    proposal.campaign_id, ProposalStatus.PUBLISHED, proposal.cost):
                return False
        return True

    def _apply(self, conn: Connection, sql: Statements, decision: Decision, profile: Profile,
               now: datetime) -> dict[str, Any]:
        """Apply the decision's effects; return values replies refer to (proposal codes)."""
        changes: dict[str, Any] = {}
        results: dict[str, Any] = {}
        for effect in decision.effects:
            match effect:
                case SetLocale(locale=locale):
                    changes["locale"] = locale
                case GiveConsent(privacy_url=url):
                    changes.update(consent_at=now, privacy_url=url)
                case SetProfile() as p:
                    changes.update({k: v for k, v in (
                        ("age_bracket", p.age_bracket), ("postal_code", p.postal_code),
                        ("departement", p.departement)) if v is not None})
                case SetPhone(phone=phone):
                    changes["phone"] = phone
                case SetStatus(status=status):
                    set_participant_status(conn, profile.id, status, now)
                case SetReminders(on=on):
                    changes["reminders"] = on
                case Follow(campaign_id=campaign_id, following=following):
                    conn.execute(sql.follow, {"pid": profile.id, "campaign_id": campaign_id,
                                              "following": following, "now": now})
                case StartBallot(campaign_id=campaign_id):
                    conn.execute(sql.start_draft, {"pid": profile.id,
                                                   "campaign_id": campaign_id, "now": now})
                case DropDraft(campaign_id=campaign_id):
                    conn.execute(sql.drop_draft, {"pid": profile.id, "campaign_id": campaign_id})
                case SubmitProposal(campaign_id=campaign_id, text=text):
                    new_id = conn.execute(sql.new_proposal, {
                        "campaign_id": campaign_id, "pid": profile.id,
                        "title": proposal_title(text), "now": now}).scalar_one()
                    results["proposal_code"] = proposal_code(new_id)
                    if self.on_proposal is not None:
                        self.on_proposal(conn, new_id, now)
                case CastBallot() as b:
                    self._cast(conn, sql, b, profile, now)
                case ReportProposal(proposal_id=proposal_id):
                    reported = report(conn, profile.id, proposal_id, now)
                    results["report"] = reported.outcome
                    if reported.hidden:
                        results.setdefault("hidden", []).append(proposal_id)
                case Erase():
                    erase_participant(conn, profile.id, now)
                    return results
                case Unregister():  # this account only: someone under 15 answering here
                    erase_participant(conn, profile.id, now, linked=False)
                    return results
        if changes:
            conn.execute(sql.update_person, {"pid": profile.id, **changes})
        return results

    def _cast(self, conn: Connection, sql: Statements, ballot: CastBallot, profile: Profile,
              now: datetime) -> None:
        """Record the ballot; if it replaces one cast by the same voter from another channel
        (the same verified phone), tell that side which ballot counts now."""
        conn.execute(sql.drop_draft, {"pid": profile.id, "campaign_id": ballot.campaign_id})
        choices = ",".join(map(str, ballot.choices))
        inserted = conn.execute(sql.cast_new, {
            "campaign_id": ballot.campaign_id, "pid": profile.id, "now": now,
            "choices": choices, "voter": ballot.voter, "age_bracket": ballot.age_bracket,
            "departement": ballot.departement}).first()
        if inserted is not None:
            return
        rows = conn.execute(sql.cast_existing, {"campaign_id": ballot.campaign_id,
                                                "voter": ballot.voter, "pid": profile.id}).all()
        found = next((r for r in rows if r.voter == ballot.voter), None) or rows[0]
        for row in rows:
            if row.id != found.id:  # their own ballot under a number they no longer use
                conn.execute(sql.cast_drop, {"ballot_id": row.id})
        conn.execute(sql.cast_replace, {
            "ballot_id": found.id, "new_choices": choices, "new_pid": profile.id,
            "new_voter": ballot.voter, "new_age_bracket": ballot.age_bracket,
            "new_departement": ballot.departement, "new_now": now})
        if found.participant_id in (None, profile.id):
            return
        other = conn.execute(sql.someone, {"pid": found.participant_id}).first()
        campaign = self.catalog.by_id(ballot.campaign_id)
        if other is None or campaign is None or other.status != Status.ACTIVE.value:
            return
        t = self.i18n[other.locale]
        text = t("vote.replaced_elsewhere", campaign=campaign.text("title", other.locale),
                 codes=", ".join(proposal_code(i) for i in ballot.choices))
        conn.execute(outbox.insert().values(**queue_values(
            participant_id=other.id, channel=other.channel, address=other.address,
            reply=Reply(text), now=now)))
