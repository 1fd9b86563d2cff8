"""Moderation: a campaign's proposals with their status, and publishing or rejecting by code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from bot.domain.ballots import Proposal
from bot.errors import ConfigError
from bot.store.db import Database
from bot.store.repo import ProposalStatus, get_campaign, moderate, proposals_with_status

STATUSES = (ProposalStatus.SUBMITTED, ProposalStatus.PUBLISHED, ProposalStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class Listed:
    proposal: Proposal
    status: str  # a ProposalStatus value


@dataclass(frozen=True, slots=True)
class Moderated:
    status: str  # what the proposals now are
    asked: int  # codes given
    changed: int  # proposals that exist and now have the status

    @property
    def complete(self) -> bool:
        return self.changed == self.asked


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


async def set_status(db: Database, codes: Sequence[str], status: str) -> Moderated:
    ids = parse_codes(codes)
    changed = await db.run(lambda conn: moderate(conn, ids, status))
    return Moderated(status, len(ids), changed)


Act = Callable[[Database, Sequence[str]], Awaitable[Moderated]]  # publish, reject


async def publish(db: Database, codes: Sequence[str]) -> Moderated:
    return await set_status(db, codes, ProposalStatus.PUBLISHED)


async def reject(db: Database, codes: Sequence[str]) -> Moderated:
    return await set_status(db, codes, ProposalStatus.REJECTED)
