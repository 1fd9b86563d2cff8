"""What the conversation offers: campaigns, their published proposals, published winners."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from bot.domain.ballots import Proposal
from bot.domain.campaigns import Campaign
from bot.domain.results import Standing


@dataclass(frozen=True, slots=True)
class Catalog:
    """Campaigns and their published proposals, as the conversation shows them."""

    campaigns: tuple[Campaign, ...] = ()
    proposals: Mapping[int, Proposal] = field(default_factory=dict)
    winners: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # results published
    # Campaign id → its results (winners, counts, per département), for campaigns showing
    # results now: counted when the catalog loads, not at every message.
    results: Mapping[int, Standing] = field(default_factory=dict)

    def by_slug(self, slug: str | None) -> Campaign | None:
        return next((c for c in self.campaigns if c.slug == slug), None)

    def by_id(self, campaign_id: int) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)

    def published(self, campaign_id: int) -> list[Proposal]:
        return sorted(
            (p for p in self.proposals.values() if p.campaign_id == campaign_id),
            key=lambda p: p.id,
        )

    def without(self, proposal_ids: Collection[int]) -> Catalog:
        """This catalog less some proposals (hidden a moment ago, before the next reload)."""
        return replace(
            self,
            proposals={i: p for i, p in self.proposals.items() if i not in proposal_ids},
            winners={c: tuple(i for i in ids if i not in proposal_ids)
                     for c, ids in self.winners.items()},
        )
