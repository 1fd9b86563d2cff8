"""The pipeline: one inbound message in, state and replies out, in one transaction.

Order, for every channel:
1. per-conversation lock (in process) so one person's messages are handled in order;
2. in one database transaction (one thread hop on SQLite):
   dedupe by provider id → identify the participant (locked FOR UPDATE on PostgreSQL)
   → load conversation state → engine (pure) → persist state, domain writes and the reply
   in the outbox;
3. wake the dispatcher.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from bot.channels.base import Inbound, Reply, ReplyChoice
from bot.conversation.effects import (
    CastBallot,
    Erase,
    GiveConsent,
    SetLocale,
    SetProfile,
    SetStatus,
    SubmitProposal,
)
from bot.conversation.engine import Catalog, Context, Decision, Engine, EngineSettings, State, render
from bot.delivery.outbox import queue_values
from bot.domain.participants import Profile, Status
from bot.i18n import I18n
from bot.store.db import Database
from bot.store.repo import ProposalStatus, insert_for, on_conflict_nothing, proposal_title
from bot.store.tables import ballots, conversations, inbound_seen, outbox, participants, proposals

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling one message did (for tests, logs and benchmarks)."""

    duplicate: bool = False
    reply: Reply | None = None
    participant_id: int | None = None


# Statements built once; SQLAlchemy caches their compiled form.
_PERSON = (
    select(participants, conversations.c.step, conversations.c.data,
           conversations.c.updated_at.label("state_at"))
    .outerjoin(conversations, conversations.c.participant_id == participants.c.id)
)
_BALLOTS = select(ballots.c.campaign_id, ballots.c.choices)
_COUNTS = (select(proposals.c.campaign_id, func.count())
           .group_by(proposals.c.campaign_id))


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
    ) -> None:
        self.db = db
        self.engine = engine
        self.i18n = i18n
        self.settings = settings
        self.catalog = catalog
        self.clock = clock
        self.default_locale = default_locale
        self.on_queued = on_queued
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def handle(self, inbound: Inbound) -> Handled:
        key = (inbound.channel, inbound.address)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        try:
            async with lock:
                handled = await self.db.run(lambda conn: self.process(conn, inbound))
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(key, None)
        if handled.reply is not None and self.on_queued is not None:
            self.on_queued()
        return handled

    # --- the unit of work, run inside one transaction --------------------------------------

    def process(self, conn: Connection, inbound: Inbound) -> Handled:
        now = self.clock()
        if inbound.provider_id is not None:
            fresh = conn.execute(
                on_conflict_nothing(conn, inbound_seen).values(
                    channel=inbound.channel, provider_id=inbound.provider_id, received_at=now)
            ).rowcount
            if not fresh:
                return Handled(duplicate=True)

        row = self._person(conn, inbound)
        if row is None:
            locale = inbound.locale_hint if inbound.locale_hint in ("fr", "en", "oc") else None
            conn.execute(on_conflict_nothing(conn, participants).values(
                channel=inbound.channel, address=inbound.address,
                locale=locale or self.default_locale, status=Status.ACTIVE.value,
                created_at=now))
            row = self._person(conn, inbound)
            assert row is not None
        profile = Profile(
            id=row.id, locale=row.locale, consent_at=row.consent_at,
            age_bracket=row.age_bracket, postal_code=row.postal_code,
            departement=row.departement, status=Status(row.status),
        )
        state = None
        if row.step is not None:
            state = State(row.step, json.loads(row.data), row.state_at)
        ballots_by_campaign: dict[int, tuple[int, ...]] = {}
        counts: dict[int, int] = {}
        if profile.consent_at is not None:
            for b in conn.execute(_BALLOTS.where(ballots.c.participant_id == profile.id)):
                ballots_by_campaign[b.campaign_id] = tuple(int(c) for c in b.choices.split(","))
            for campaign_id, count in conn.execute(
                _COUNTS.where(proposals.c.author_id == profile.id)
            ):
                counts[campaign_id] = count
        ctx = Context(now=now, profile=profile, catalog=self.catalog, settings=self.settings,
                      i18n=self.i18n, ballots=ballots_by_campaign, proposal_counts=counts)
        decision = self.engine.advance(state, inbound, ctx)

        results = self._apply(conn, decision, profile, now)
        erased = any(isinstance(e, Erase) for e in decision.effects)
        if not erased and decision.state is not None:
            self._save_state(conn, profile.id, decision.state, now)
        if decision.silent:
            return Handled(participant_id=profile.id)
        reply = Reply(
            render(decision, self.i18n, results),
            tuple(ReplyChoice(o.id, o.key, o.label) for o in decision.options),
        )
        conn.execute(outbox.insert().values(**queue_values(
            participant_id=None if erased else profile.id, channel=inbound.channel,
            address=inbound.address, reply=reply, now=now)))
        return Handled(reply=reply, participant_id=None if erased else profile.id)

    def _person(self, conn: Connection, inbound: Inbound) -> Any:
        query = _PERSON.where(participants.c.channel == inbound.channel,
                              participants.c.address == inbound.address)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=participants)
        return conn.execute(query).first()

    def _save_state(self, conn: Connection, participant_id: int, state: State,
                    now: datetime) -> None:
        values = {"step": state.step, "data": json.dumps(dict(state.data), ensure_ascii=False),
                  "updated_at": now}
        stmt = insert_for(conn, conversations).values(participant_id=participant_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["participant_id"], set_=values))

    def _apply(self, conn: Connection, decision: Decision, profile: Profile,
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
                case SetStatus(status=status):
                    changes["status"] = status.value
                case SubmitProposal(campaign_id=campaign_id, text=text):
                    new_id = conn.execute(proposals.insert().values(
                        campaign_id=campaign_id, author_id=profile.id,
                        title=proposal_title(text), status=ProposalStatus.SUBMITTED,
                        created_at=now).returning(proposals.c.id)).scalar_one()
                    results["proposal_code"] = f"P{new_id}"
                case CastBallot() as b:
                    values = {"choices": ",".join(map(str, b.choices)),
                              "age_bracket": b.age_bracket, "departement": b.departement,
                              "updated_at": now}
                    stmt = insert_for(conn, ballots).values(
                        campaign_id=b.campaign_id, participant_id=profile.id,
                        created_at=now, **values)
                    conn.execute(stmt.on_conflict_do_update(
                        index_elements=["participant_id", "campaign_id"], set_=values))
                case Erase():
                    erase_participant(conn, profile.id)
                    return results
        if changes:
            conn.execute(update(participants).where(participants.c.id == profile.id)
                         .values(**changes))
        return results


def erase_participant(conn: Connection, participant_id: int) -> None:
    """Forget a person: ballots stay counted (anonymised), proposals stay without author."""
    conn.execute(update(ballots).where(ballots.c.participant_id == participant_id)
                 .values(participant_id=None))
    conn.execute(update(proposals).where(proposals.c.author_id == participant_id)
                 .values(author_id=None))
    conn.execute(delete(outbox).where(outbox.c.participant_id == participant_id))
    conn.execute(delete(conversations).where(conversations.c.participant_id == participant_id))
    conn.execute(delete(participants).where(participants.c.id == participant_id))
