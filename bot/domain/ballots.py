"""Ballot validation: what a person may put in one ballot under a campaign's rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.domain.campaigns import BallotMethod, Campaign, short_label


class BallotProblem(StrEnum):
    EMPTY = "empty"
    TOO_MANY = "too_many"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"  # not a published proposal of this campaign
    OVER_BUDGET = "over_budget"
    UNDER_MINIMUM = "under_minimum"


def proposal_code(proposal_id: int) -> str:
    """The code people read and type for a proposal: P12."""
    return f"P{proposal_id}"


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposal as the conversation shows it; `code` is what people type (P12)."""

    id: int
    campaign_id: int
    title: Mapping[str, str]
    cost: int | None = None
    published: bool = True
    hidden: bool = False  # published once, then hidden by staff or reports: out of sight
    ref: str | None = None  # a seed proposal's reference in its campaign file
    short: Mapping[str, str] = field(default_factory=dict)  # short title (seed proposals)

    @property
    def code(self) -> str:
        return proposal_code(self.id)

    def text(self, locale: str) -> str:
        return self.title.get(locale) or self.title["fr"]

    def label(self, locale: str) -> str:
        """Its name in lists and buttons: the short title, else the title cut short."""
        return short_label(self.short, self.title, locale)


def ballot_cost(choices: Sequence[int], proposals: Mapping[int, Proposal]) -> int:
    return sum(proposals[c].cost or 0 for c in choices if c in proposals)


def validate_ballot(
    campaign: Campaign, choices: Sequence[int], proposals: Mapping[int, Proposal]
) -> BallotProblem | None:
    """The first problem with `choices` (proposal ids), or None when the ballot is valid.

    `proposals` holds the campaign's proposals by id; unpublished ones are refused.
    """
    if not choices:
        return BallotProblem.EMPTY
    if len(set(choices)) != len(choices):
        return BallotProblem.DUPLICATE
    for choice in choices:
        proposal = proposals.get(choice)
        if proposal is None or not proposal.published or proposal.campaign_id != campaign.id:
            return BallotProblem.UNKNOWN
    rules = campaign.ballot
    if rules.method is BallotMethod.BUDGET:
        assert campaign.envelope is not None
        total = ballot_cost(choices, proposals)
        if total > campaign.envelope:
            return BallotProblem.OVER_BUDGET
        if total < rules.min_share * campaign.envelope:
            return BallotProblem.UNDER_MINIMUM
    elif len(choices) > rules.max_choices:
        return BallotProblem.TOO_MANY
    return None
