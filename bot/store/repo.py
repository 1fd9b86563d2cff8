"""Queries for the cold paths: campaigns, the conversation catalog, moderation, results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.domain.ballots import Proposal, proposal_code
from bot.domain.campaigns import (
    PARIS,
    Audience,
    BallotMethod,
    BallotRules,
    Campaign,
    Kind,
    Moment,
    Phase,
    PhaseWindow,
    ProposalRules,
    SeedProposal,
    frozen_changes,
)
from bot.domain.catalog import Catalog
from bot.domain.events import event_from_json, event_to_json
from bot.domain.participants import Status
from bot.domain.results import CastBallot, Standing
from bot.errors import FrozenRulesError, StoreError
from bot.store.tables import (
    ballot_drafts,
    ballots,
    campaigns,
    conversations,
    follows,
    outbox,
    participants,
    proposals,
)


class ProposalStatus:
    SUBMITTED = "submitted"
    PUBLISHED = "published"
    REJECTED = "rejected"
    # Out of participants' sight (lists, pages, new ballots) after being published: by staff,
    # or by reports awaiting review. Ballots already cast for it stay counted.
    HIDDEN = "hidden"


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# --- campaign definitions ----------------------------------------------------------------------


def campaign_to_json(campaign: Campaign) -> str:
    return json.dumps({
        "slug": campaign.slug,
        "kind": campaign.kind.value,
        "title": dict(campaign.title),
        "summary": dict(campaign.summary),
        "description": dict(campaign.description),
        "phases": [[w.phase.value, w.start.isoformat(), w.end.isoformat() if w.end else None]
                   for w in campaign.phases],
        "audience": {"age_brackets": list(campaign.audience.age_brackets),
                     "departements": list(campaign.audience.departements)},
        "proposals": {"max_length": campaign.proposal_rules.max_length,
                      "max_per_person": campaign.proposal_rules.max_per_person},
        "ballot": {"method": campaign.ballot.method.value,
                   "max_choices": campaign.ballot.max_choices,
                   "min_share": campaign.ballot.min_share},
        "envelope": campaign.envelope,
        "contact": campaign.contact,
        "verified_phone": campaign.verified_phone,
        "reminders": (None if campaign.declared_events is None
                      else [event_to_json(e) for e in campaign.declared_events]),
        "sending_window": dict(campaign.sending_windows),
        "short": dict(campaign.short),
        "seed_short": {ref: dict(short) for ref, short in campaign.seed_shorts.items()},
    }, ensure_ascii=False, sort_keys=True)


def campaign_from_json(text: str, campaign_id: int) -> Campaign:
    raw = json.loads(text)
    return Campaign(
        id=campaign_id,
        slug=raw["slug"],
        kind=Kind(raw["kind"]),
        title=raw["title"],
        summary=raw["summary"],
        description=raw["description"],
        phases=tuple(
            PhaseWindow(Phase(p), datetime.fromisoformat(s), datetime.fromisoformat(e) if e
                        else None)
            for p, s, e in raw["phases"]
        ),
        audience=Audience(tuple(raw["audience"]["age_brackets"]),
                          tuple(raw["audience"]["departements"])),
        proposal_rules=ProposalRules(**raw["proposals"]),
        ballot=BallotRules(method=BallotMethod(raw["ballot"]["method"]),
                           max_choices=raw["ballot"]["max_choices"],
                           min_share=raw["ballot"]["min_share"]),
        envelope=raw["envelope"],
        contact=raw.get("contact", ""),
        verified_phone=raw.get("verified_phone", False),
        declared_events=(None if raw.get("reminders") is None
                         else tuple(event_from_json(e) for e in raw["reminders"])),
        sending_windows=raw.get("sending_window") or {},
        short=raw.get("short") or {},
        seed_shorts=raw.get("seed_short") or {},
    )


@dataclass(frozen=True, slots=True)
class SaveReport:
    slug: str
    created: bool
    seeded: int


def save_campaign(conn: Connection, campaign: Campaign, now: datetime) -> SaveReport:
    """Create or update a campaign by slug; once its vote has opened (as stored: the new
    file's dates do not decide), its ballot rules and seed proposals are frozen."""
    row = conn.execute(
        select(campaigns.c.id, campaigns.c.definition).where(campaigns.c.slug == campaign.slug)
    ).first()
    definition = campaign_to_json(campaign)
    if row is None:
        campaign_id = conn.execute(
            campaigns.insert().values(slug=campaign.slug, definition=definition,
                                      created_at=now, updated_at=now)
            .returning(campaigns.c.id)
        ).scalar_one()
        created = True
    else:
        campaign_id = row.id
        check_frozen(conn, campaign_from_json(row.definition, row.id), campaign, now)
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                     .values(definition=definition, updated_at=now))
        created = False
    seeded = 0
    for seed in campaign.seed_proposals:
        values = {"title": json.dumps(dict(seed.title), ensure_ascii=False), "cost": seed.cost}
        stmt = insert_for(conn, proposals).values(
            campaign_id=campaign_id, ref=seed.ref, status=ProposalStatus.PUBLISHED,
            created_at=now, **values)
        existing = conn.execute(select(proposals.c.id).where(
            proposals.c.campaign_id == campaign_id, proposals.c.ref == seed.ref)).first()
        conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id", "ref"],
                                                set_=values))
        seeded += existing is None
    return SaveReport(campaign.slug, created, seeded)


def vote_opened(conn: Connection, stored: Campaign, now: datetime) -> datetime | None:
    """When the stored campaign's vote opened, or None if it has not.

    Its stored dates say so; so does any ballot, cast or started, in it: a vote that opened
    and whose start was later pushed back (before this check existed) stays opened.
    """
    vote = stored.window(Phase.VOTE)
    opened = [vote.start] if vote is not None and vote.start <= now else []
    for table, column in ((ballots, ballots.c.created_at),
                          (ballot_drafts, ballot_drafts.c.updated_at)):
        first = conn.execute(select(func.min(column)).where(
            table.c.campaign_id == stored.id)).scalar()
        if first is not None:
            opened.append(first)
    return min(opened, default=None)


def check_frozen(conn: Connection, stored: Campaign, new: Campaign, now: datetime) -> None:
    """Refuse (FrozenRulesError, naming each field) a new definition of a campaign whose
    vote has opened that changes what voters rely on. (A forced phase only moves dates:
    `staff.campaigns.force_phase` refuses to go back before a vote that has opened.)"""
    opened = vote_opened(conn, stored, now)
    if opened is None:
        return
    rows = conn.execute(
        select(proposals.c.ref, proposals.c.title, proposals.c.cost, proposals.c.status)
        .where(proposals.c.campaign_id == stored.id, proposals.c.ref.is_not(None))).all()
    seeds = [SeedProposal(r.ref, json.loads(r.title), r.cost) for r in rows]
    on_ballot = [r.ref for r in rows if r.status == ProposalStatus.PUBLISHED]
    frozen = frozen_changes(stored, new, now, seeds=seeds, on_ballot=on_ballot)
    if frozen:
        local = opened.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")
        raise FrozenRulesError(f"{stored.slug}: its vote opened on {local}, so these can no "
                               "longer change: " + "; ".join(frozen))


def _proposal(row: Any) -> Proposal:
    title = json.loads(row.title) if row.title.startswith("{") else {"fr": row.title}
    return Proposal(id=row.id, campaign_id=row.campaign_id, title=title, cost=row.cost,
                    ref=row.ref, published=row.status == ProposalStatus.PUBLISHED,
                    hidden=row.status == ProposalStatus.HIDDEN)


def proposal_title(text: str) -> str:
    """How a participant's proposal text is stored (as the French title: it is theirs)."""
    return json.dumps({"fr": text}, ensure_ascii=False)


def load_campaigns(conn: Connection) -> list[Campaign]:
    rows = conn.execute(select(campaigns.c.id, campaigns.c.definition).order_by(campaigns.c.id))
    return [campaign_from_json(r.definition, r.id) for r in rows]


def get_campaign(conn: Connection, slug: str) -> Campaign:
    row = conn.execute(
        select(campaigns.c.id, campaigns.c.definition).where(campaigns.c.slug == slug)
    ).first()
    if row is None:
        raise StoreError(f"no campaign {slug!r} (see `votz campaigns list`)")
    return campaign_from_json(row.definition, row.id)


# A vote's tally is kept once its results phase has run this long, and its campaign was last
# saved as long ago: no ballot confirmed before the vote closed is still being written by
# then (each takes one short transaction), even when a reload closed the vote early (its
# results phase then starts in the past).
RESULTS_SETTLED = timedelta(minutes=5)


@dataclass
class Tallies:
    """The tallies of one process's catalog, kept between reloads once settled. Touched
    only inside `Database.run` (one thread on SQLite, the event loop's on PostgreSQL)."""

    # Campaign id → (the campaign, its published proposals and how many ballots it had
    # when counted), and the standing counted.
    kept: dict[int, tuple[tuple[Campaign, tuple[Proposal, ...], int], Standing]] = field(
        default_factory=dict)


def load_catalog(conn: Connection, now: datetime, tallies: Tallies | None = None) -> Catalog:
    """Campaigns, published proposals, and the winners of campaigns showing results now.

    Only published proposals: submitted, rejected and hidden ones are never offered to
    participants (lists, proposal pages, ballots, VOTE and SIGNALER codes).

    Tallies are read only for campaigns in their results phase: the catalog is reloaded
    every 30 s by `votz run`, and campaigns still voting or long closed need none. Once a
    results phase has run `RESULTS_SETTLED` (and its campaign was saved as long ago), its
    ballots no longer change (a ballot is checked against the phase when it is confirmed;
    erasure keeps counted ballots): the tally is kept in `tallies` (the process's) and
    counted again only if the campaign, its published proposals or its number of ballots
    change. With 200,000 ballots, counting them took 1.1 s of SQLite's one connection
    every 30 s; counting the rows alone takes 7 ms.
    """
    rows = conn.execute(
        select(proposals).where(proposals.c.status == ProposalStatus.PUBLISHED)
    )
    published = {p.id: p for p in map(_proposal, rows)}
    campaigns_ = tuple(load_campaigns(conn))
    shorts = {c.id: c.seed_shorts for c in campaigns_ if c.seed_shorts}
    for p in list(published.values()):
        short = shorts.get(p.campaign_id, {}).get(p.ref or "")
        if short:
            published[p.id] = replace(p, short=short)
    winners: dict[int, tuple[int, ...]] = {}
    standings: dict[int, Standing] = {}
    for campaign in campaigns_:
        if campaign.phase_at(now) is not Phase.RESULTS:
            continue
        own = tuple(sorted((p for p in published.values() if p.campaign_id == campaign.id),
                           key=lambda p: p.id))
        kept = tallies.kept.get(campaign.id) if tallies is not None else None
        key = (campaign, own, _ballot_count(conn, campaign.id)) if kept is not None else None
        if kept is not None and kept[0] == key:
            standing = kept[1]
        else:
            cast = counted_ballots(conn, campaign.id)
            standing = Standing.of(campaign, list(own), cast)
            window = campaign.window(Phase.RESULTS)
            if tallies is not None and window is not None:
                saved = conn.execute(select(campaigns.c.updated_at).where(
                    campaigns.c.id == campaign.id)).scalar_one()
                if now - max(window.start, saved) >= RESULTS_SETTLED:
                    tallies.kept[campaign.id] = ((campaign, own, len(cast)), standing)
        standings[campaign.id] = standing
        winners[campaign.id] = tuple(line.proposal.id for line in standing.winners)
    if tallies is not None:  # no longer showing results: forgotten
        for gone in tallies.kept.keys() - standings.keys():
            del tallies.kept[gone]
    return Catalog(campaigns=campaigns_, proposals=published, winners=winners,
                   results=standings)


def campaign_proposals(conn: Connection, campaign_id: int, *, status: str | None = None
                       ) -> list[Proposal]:
    return [p for p, _ in proposals_with_status(conn, campaign_id, status=status)]


def proposals_with_status(conn: Connection, campaign_id: int, *, status: str | None = None
                          ) -> list[tuple[Proposal, str]]:
    """A campaign's proposals in order, each with its `ProposalStatus` (staff listing)."""
    query = select(proposals).where(proposals.c.campaign_id == campaign_id)
    if status is not None:
        query = query.where(proposals.c.status == status)
    return [(_proposal(r), r.status) for r in conn.execute(query.order_by(proposals.c.id))]


def moderate(conn: Connection, proposal_ids: Sequence[int], status: str) -> int:
    result = conn.execute(
        update(proposals).where(proposals.c.id.in_(proposal_ids)).values(status=status)
    )
    return result.rowcount or 0


def _ballot_count(conn: Connection, campaign_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(ballots).where(
        ballots.c.campaign_id == campaign_id)).scalar_one())


def counted_ballots(conn: Connection, campaign_id: int) -> list[CastBallot]:
    rows = conn.execute(
        select(ballots.c.choices, ballots.c.age_bracket, ballots.c.departement)
        .where(ballots.c.campaign_id == campaign_id).order_by(ballots.c.id)
    )
    return [CastBallot(tuple(int(c) for c in r.choices.split(",") if c), r.age_bracket,
                       r.departement) for r in rows]


def participant_export(conn: Connection, channel: str, address: str) -> dict[str, Any] | None:
    """Everything held about one person (GDPR access), as plain data, with their accounts on
    other channels that share their verified phone number ("other_accounts")."""
    person = conn.execute(
        select(participants).where(participants.c.channel == channel,
                                   participants.c.address == address)
    ).mappings().first()
    if person is None:
        return None
    found = _export_one(conn, person)
    others = []
    for other in linked_accounts(conn, person["id"]):
        row = conn.execute(select(participants).where(participants.c.id == other)
                           ).mappings().one()
        others.append(_export_one(conn, row))
    found["other_accounts"] = others
    return found


def _export_one(conn: Connection, person: Any) -> dict[str, Any]:
    own = conn.execute(
        select(proposals.c.id, proposals.c.title, proposals.c.status, campaigns.c.slug)
        .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
        .where(proposals.c.author_id == person["id"])
    )
    cast = conn.execute(
        select(ballots.c.choices, ballots.c.updated_at, campaigns.c.slug)
        .join(campaigns, campaigns.c.id == ballots.c.campaign_id)
        .where(ballots.c.participant_id == person["id"])
    )
    followed = conn.execute(
        select(follows.c.following, follows.c.updated_at, campaigns.c.slug)
        .join(campaigns, campaigns.c.id == follows.c.campaign_id)
        .where(follows.c.participant_id == person["id"]).order_by(campaigns.c.slug)
    )
    drafts = conn.execute(
        select(ballot_drafts.c.updated_at, ballot_drafts.c.nudges, campaigns.c.slug)
        .join(campaigns, campaigns.c.id == ballot_drafts.c.campaign_id)
        .where(ballot_drafts.c.participant_id == person["id"]).order_by(campaigns.c.slug)
    )
    return {
        "participant": {k: (v.isoformat() if isinstance(v, datetime) else v)
                        for k, v in person.items()},
        "proposals": [{"code": proposal_code(r.id), "campaign": r.slug, "status": r.status,
                       "text": json.loads(r.title).get("fr")} for r in own],
        "ballots": [{"campaign": r.slug,
                     "choices": [proposal_code(int(c)) for c in r.choices.split(",") if c],
                     "updated_at": r.updated_at.isoformat()} for r in cast],
        # Announcements and reminders: on or off for every campaign (also in "participant").
        "reminders": bool(person["reminders"]),
        # Campaigns followed (True) or not to hear from at all (False).
        "follows": [{"campaign": r.slug, "following": bool(r.following),
                     "updated_at": r.updated_at.isoformat()} for r in followed],
        # Ballots started and not confirmed (a reminder may follow).
        "ballot_drafts": [{"campaign": r.slug, "updated_at": r.updated_at.isoformat(),
                           "nudges": r.nudges} for r in drafts],
    }


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def delete_campaign(conn: Connection, slug: str) -> None:
    conn.execute(delete(campaigns).where(campaigns.c.slug == slug))


NOT_SENT_STOPPED = "not sent: the person stopped messages before it left"


def set_participant_status(conn: Connection, participant_id: int, status: Status,
                           now: datetime) -> None:
    """The one path by which a person's status changes: a keyword they sent (STOP, START,
    through the engine's `SetStatus`) or what a channel reported (blocked, opted out).

    A person who stops gets nothing already queued for them (a retry, a page, a reminder);
    only what is `unconditional` (the answer to their STOP) still leaves.
    """
    conn.execute(update(participants).where(participants.c.id == participant_id)
                 .values(status=status.value))
    if status is not Status.ACTIVE:
        conn.execute(update(outbox).where(
            outbox.c.participant_id == participant_id, outbox.c.status == "queued",
            outbox.c.unconditional.is_(False),
        ).values(status="failed", failure_reason=NOT_SENT_STOPPED, claimed_by=None,
                 updated_at=now))


def linked_accounts(conn: Connection, participant_id: int) -> list[int]:
    """The person's other accounts: those with the same verified phone number (their SMS
    number, the number they shared on Telegram), on any channel."""
    phone = conn.execute(select(participants.c.phone)
                         .where(participants.c.id == participant_id)).scalar()
    if not phone:
        return []
    return list(conn.execute(select(participants.c.id).where(
        participants.c.phone == phone, participants.c.id != participant_id)
        .order_by(participants.c.id)).scalars())


def erase_participant(conn: Connection, participant_id: int, now: datetime, *,
                      linked: bool = True) -> None:
    """Forget a person, with (`linked`) their accounts on other channels that share their
    verified phone number (one person, one erasure). Ballots of closed votes stay counted,
    anonymous; a ballot in a vote still open is withdrawn (otherwise erasing and coming back
    would vote twice); proposals stay, without their author.
    """
    for other in linked_accounts(conn, participant_id) if linked else ():
        _erase_one(conn, other, now)
    _erase_one(conn, participant_id, now)


def _erase_one(conn: Connection, participant_id: int, now: datetime) -> None:
    still_open = [c.id for c in load_campaigns(conn) if c.is_open(Phase.VOTE, now)
                  or c.phase_at(now) in (Moment.UPCOMING,)]
    if still_open:
        conn.execute(delete(ballots).where(ballots.c.participant_id == participant_id,
                                           ballots.c.campaign_id.in_(still_open)))
    conn.execute(update(ballots).where(ballots.c.participant_id == participant_id)
                 .values(participant_id=None, voter=None))
    conn.execute(update(proposals).where(proposals.c.author_id == participant_id)
                 .values(author_id=None))
    person = conn.execute(select(participants.c.channel, participants.c.address)
                          .where(participants.c.id == participant_id)).one_or_none()
    conn.execute(delete(outbox).where(outbox.c.participant_id == participant_id))
    if person is not None:
        delete_messages_to(conn, person.channel, person.address)
    conn.execute(delete(conversations).where(conversations.c.participant_id == participant_id))
    conn.execute(delete(participants).where(participants.c.id == participant_id))


def delete_messages_to(conn: Connection, channel: str, address: str) -> int:
    """Delete every outbox row to this address, whatever its status or participant link (a
    farewell that could not be sent, a row queued before the person was erased once)."""
    result = conn.execute(delete(outbox).where(outbox.c.channel == channel,
                                               outbox.c.address == address))
    return result.rowcount or 0


def erase_address(conn: Connection, channel: str, address: str, now: datetime) -> bool:
    """Erase one person on request (staff side), messages to their address included; False
    when nothing was held about that address."""
    found = conn.execute(select(participants.c.id).where(
        participants.c.channel == channel, participants.c.address == address)).scalar()
    if found is None:
        return delete_messages_to(conn, channel, address) > 0
    erase_participant(conn, found, now)
    return True


def purge_unconsented(conn: Connection, before: datetime, now: datetime) -> int:
    """Forget people who started onboarding before `before` and never consented.

    Those who said STOP are kept: their address is what keeps them from being messaged.
    """
    ids = conn.execute(select(participants.c.id).where(
        participants.c.consent_at.is_(None), participants.c.created_at < before,
        participants.c.status == "active")).scalars().all()
    for participant_id in ids:
        erase_participant(conn, participant_id, now)
    return len(ids)


def purge_outbox(conn: Connection, before: datetime) -> int:
    """Delete finished messages (they hold addresses and texts) older than `before`."""
    result = conn.execute(delete(outbox).where(
        outbox.c.status.in_(["sent", "delivered", "failed", "cancelled"]),
        outbox.c.updated_at < before))
    return result.rowcount or 0
