"""Moderation: a campaign's proposals with their status, and publishing or rejecting by code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from bot.channels.base import Reply
from bot.delivery.outbox import queue_values
from bot.delivery.windows import Windows
from bot.domain.ballots import Proposal, proposal_code
from bot.domain.campaigns import Phase
from bot.domain.participants import Status
from bot.errors import ConfigError
from bot.i18n import N_, I18n
from bot.scheduling.events import sendable_channels
from bot.store.db import Database
from bot.store.repo import (
    ProposalStatus,
    campaign_from_json,
    get_campaign,
    insert_for,
    moderate,
    proposals_with_status,
)
from bot.store.tables import campaigns, outbox, participants, proposals

STATUSES = (ProposalStatus.SUBMITTED, ProposalStatus.PUBLISHED, ProposalStatus.REJECTED)
# Why an idea is not published: what its author is told, in their language.
REASONS = {
    "spam": N_("reason.spam"),
    "offensive": N_("reason.offensive"),
    "off_topic": N_("reason.off_topic"),
    "personal_data": N_("reason.personal_data"),
    "duplicate": N_("reason.duplicate"),
    "not_eligible": N_("reason.not_eligible"),
}
OUTCOMES = {
    ProposalStatus.PUBLISHED: N_("outcome.published"),
    ProposalStatus.REJECTED: N_("outcome.rejected"),
}


@dataclass(frozen=True, slots=True)
class Notify:
    """How to tell authors: their language's texts, and when a bulk message may leave."""

    i18n: I18n
    windows: Windows
    now: datetime


@dataclass(frozen=True, slots=True)
class Listed:
    proposal: Proposal
    status: str  # a ProposalStatus value


@dataclass(frozen=True, slots=True)
class Moderated:
    status: str  # what the proposals now are
    asked: int  # distinct proposals given
    changed: int  # proposals that exist and now have the status
    # The codes not acted on, each with why ("no such proposal", …), in the order given.
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def complete(self) -> bool:
        return not self.refused and self.changed == self.asked


def parse_codes(codes: Sequence[str]) -> list[int]:
    """Proposal ids from the codes staff type ("P12", "p12" or "12")."""
    try:
        return [int(str(code).strip().lstrip("Pp")) for code in codes]
    except ValueError:
        raise ConfigError(f"proposal codes look like P12: {' '.join(codes)}") from None


async def list_proposals(db: Database, slug: str, *, status: str | None = None) -> list[Listed]:
    """The campaign's proposals in order, optionally only those with `status`."""

    def query(conn: Connection) -> list[Listed]:
        campaign = get_campaign(conn, slug)
        return [Listed(p, s) for p, s in proposals_with_status(conn, campaign.id, status=status)]

    return await db.run(query)


NO_SUCH_PROPOSAL = "no such proposal"
VOTE_OPEN = "its vote is open; it can no longer be rejected"


async def set_status(db: Database, codes: Sequence[str], status: str, *,
                     notify: Notify | None = None, reason: str | None = None,
                     now: datetime | None = None) -> Moderated:
    """Give the proposals `status`; with `notify`, each author whose idea changed status is
    told (published; or rejected, with the reason) in their language, in the same
    transaction.

    Codes of no proposal are refused ("no such proposal"), and so is rejecting a published
    proposal while its campaign's vote is open at `now` (default: `notify.now`, else the
    current time): voters may have chosen it. The others are acted on."""
    ids = list(dict.fromkeys(parse_codes(codes)))  # in order, each once
    if reason is not None and reason not in REASONS:
        raise ConfigError(f"unknown reason {reason!r}: one of {', '.join(REASONS)}")
    at = now or (notify.now if notify is not None else datetime.now(UTC))

    def apply(conn: Connection) -> Moderated:
        found = {r.id: r for r in conn.execute(
            select(proposals.c.id, proposals.c.status, campaigns.c.id.label("campaign_id"),
                   campaigns.c.definition)
            .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
            .where(proposals.c.id.in_(ids)))}
        refused: list[tuple[str, str]] = []
        acting: list[int] = []
        for proposal_id in ids:
            row = found.get(proposal_id)
            if row is None:
                refused.append((proposal_code(proposal_id), NO_SUCH_PROPOSAL))
            elif (status == ProposalStatus.REJECTED
                  and row.status == ProposalStatus.PUBLISHED
                  and campaign_from_json(row.definition, row.campaign_id)
                  .is_open(Phase.VOTE, at)):
                refused.append((proposal_code(proposal_id), VOTE_OPEN))
            else:
                acting.append(proposal_id)
        changing = [i for i in acting if found[i].status != status]
        changed = moderate(conn, acting, status) if acting else 0
        if notify is not None and status in OUTCOMES:
            tell_authors(conn, changing, status, reason, notify)
        return Moderated(status, len(ids), changed, tuple(refused))

    return await db.run(apply)


def tell_authors(conn: Connection, proposal_ids: Sequence[int], status: str,
                 reason: str | None, notify: Notify) -> int:
    """Queue, for each proposal's author still reachable, what became of their idea (once
    per proposal and outcome: the outbox key is `proposal:ID:STATUS`)."""
    if not proposal_ids:
        return 0
    rows = conn.execute(
        select(proposals.c.id, campaigns.c.id.label("campaign_id"), campaigns.c.definition,
               participants.c.id.label("pid"), participants.c.channel,
               participants.c.address, participants.c.locale)
        .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
        .join(participants, participants.c.id == proposals.c.author_id)
        .where(proposals.c.id.in_(list(proposal_ids)),
               participants.c.consent_at.is_not(None),
               participants.c.channel.in_(sendable_channels()),
               participants.c.status == Status.ACTIVE.value)).all()
    queued = 0
    for row in rows:
        t = notify.i18n[row.locale]
        campaign = campaign_from_json(row.definition, row.campaign_id)
        params = {"code": proposal_code(row.id), "campaign": campaign.text("title", row.locale)}
        if reason is not None:
            params["reason"] = t(REASONS[reason])
        text = t(OUTCOMES[status] if reason is None else N_("outcome.rejected_because"),
                 **params)
        values = queue_values(
            participant_id=row.pid, channel=row.channel, address=row.address,
            reply=Reply(text), now=notify.now, idempotency_key=f"proposal:{row.id}:{status}",
            bulk=True, not_before=notify.windows.next_open(row.channel, notify.now))
        queued += conn.execute(insert_for(conn, outbox).values(**values)
                               .on_conflict_do_nothing()).rowcount or 0
    return queued


Act = Callable[..., Awaitable[Moderated]]  # publish, reject


async def publish(db: Database, codes: Sequence[str], *, notify: Notify | None = None,
                  reason: str | None = None) -> Moderated:
    return await set_status(db, codes, ProposalStatus.PUBLISHED, notify=notify)


async def reject(db: Database, codes: Sequence[str], *, notify: Notify | None = None,
                 reason: str | None = None) -> Moderated:
    return await set_status(db, codes, ProposalStatus.REJECTED, notify=notify, reason=reason)
