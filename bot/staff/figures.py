"""Live figures per campaign, for staff only: participants, proposals waiting, ballots so far.

Ballot counts are not public before a campaign's results phase: the participant flows never
show them; staff read them here (the staff chat's /stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, exists, func, or_, select

from bot.domain.campaigns import PARIS, Moment, Phase
from bot.domain.participants import Status
from bot.store.repo import ProposalStatus, load_campaigns
from bot.store.tables import ballots, participants, proposal_reports, proposals

PHASE_NAMES = {
    Phase.INFORMATION: "information", Phase.SUBMISSION: "dépôt des idées",
    Phase.MODERATION: "modération", Phase.VOTE: "vote", Phase.RESULTS: "résultats",
    Moment.UPCOMING: "à venir", Moment.BETWEEN: "entre deux phases", Moment.CLOSED: "terminée",
}


@dataclass(frozen=True, slots=True)
class Figures:
    """One campaign's figures now."""

    slug: str
    title: str  # in French
    phase: str  # in French
    eligible: int  # consenting participants in its audience
    active: int  # of them, those Votz may still write to (not stopped)
    waiting: int  # proposals waiting for a decision (see `waiting`)
    ballots: int


def waiting() -> ColumnElement[bool]:
    """A proposal waiting for a staff decision: submitted, or hidden by reports (as
    `moderation.pending` lists them)."""
    reported = exists().where(proposal_reports.c.proposal_id == proposals.c.id)
    return or_(proposals.c.status == ProposalStatus.SUBMITTED,
               and_(proposals.c.status == ProposalStatus.HIDDEN, reported))


def figures(conn: Connection, now: datetime) -> list[Figures]:
    """Every campaign not closed, in the order they were loaded."""
    found = []
    for campaign in load_campaigns(conn):
        phase = campaign.phase_at(now)
        if phase is Moment.CLOSED:
            continue
        eligible = and_(participants.c.consent_at.is_not(None),
                        participants.c.age_bracket.in_(campaign.audience.age_brackets),
                        participants.c.departement.in_(campaign.audience.departements))
        people = conn.execute(select(
            func.count(), func.count().filter(participants.c.status == Status.ACTIVE.value))
            .where(eligible)).one()
        pending = conn.execute(select(func.count()).where(
            proposals.c.campaign_id == campaign.id, waiting())).scalar_one()
        cast = conn.execute(select(func.count())
                            .where(ballots.c.campaign_id == campaign.id)).scalar_one()
        found.append(Figures(campaign.slug, campaign.text("title", "fr"),
                             PHASE_NAMES.get(phase, str(phase)), people[0], people[1],
                             pending, cast))
    return found


def plural(n: int, word: str, words: str | None = None) -> str:
    """"1 message", "2 messages", "0 message" (French: 0 and 1 are singular)."""
    return f"{n} {word if n <= 1 else (words or word + 's')}"


def figures_text(found: Sequence[Figures], now: datetime) -> str:
    """The figures as the staff chat shows them."""
    if not found:
        return "Aucune campagne en cours."
    lines = [f"Chiffres au {now.astimezone(PARIS):%d/%m à %H:%M} (réservés à l'équipe)"]
    for f in found:
        lines += ["", f"{f.title} ({f.phase})",
                  f"· participants : {plural(f.eligible, 'éligible')}, dont "
                  f"{plural(f.active, 'actif')}",
                  f"· propositions à modérer : {f.waiting}",
                  f"· votes : {f.ballots}"]
    return "\n".join(lines)
