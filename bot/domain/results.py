"""Tallies, winners and small-cell-suppressed breakdowns, from anonymous ballots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.domain.ballots import Proposal
from bot.domain.campaigns import Campaign

SUPPRESS_BELOW = 5


@dataclass(frozen=True, slots=True)
class CastBallot:
    """A counted ballot, without who cast it."""

    choices: tuple[int, ...]
    age_bracket: str | None
    departement: str | None


@dataclass(frozen=True, slots=True)
class Line:
    proposal: Proposal
    votes: int
    winner: bool


@dataclass(frozen=True, slots=True)
class Results:
    campaign: Campaign
    ballots: int
    lines: tuple[Line, ...]
    envelope_used: int | None
    by_age: Mapping[str, int | None]  # None = fewer than SUPPRESS_BELOW, not shown
    by_departement: Mapping[str, int | None]


def _suppress(counter: Counter[str]) -> dict[str, int | None]:
    """Hide cells under SUPPRESS_BELOW; when only one is hidden, hide the next smallest too,
    so that it cannot be found back by subtracting the others from the total."""
    shown: dict[str, int | None] = {
        k: (v if v >= SUPPRESS_BELOW else None) for k, v in sorted(counter.items())}
    hidden = [k for k, v in shown.items() if v is None]
    visible = sorted((v, k) for k, v in shown.items() if v is not None)
    if len(hidden) == 1 and visible:
        shown[visible[0][1]] = None
    return shown


def tally(
    campaign: Campaign, proposals: Sequence[Proposal], ballots: Iterable[CastBallot]
) -> Results:
    """Count every ballot; winners are the most voted (for an envelope: most voted that fit).

    Ties are broken by proposal id (the earlier proposal first), so the result is reproducible.
    A hidden proposal keeps its line and the votes cast for it (ballots already cast stay
    counted) but never wins while it is hidden: it is out of participants' sight.
    """
    votes: Counter[int] = Counter()
    by_age: Counter[str] = Counter()
    by_dep: Counter[str] = Counter()
    count = 0
    for ballot in ballots:
        count += 1
        votes.update(ballot.choices)
        by_age[ballot.age_bracket or "unknown"] += 1
        by_dep[ballot.departement or "unknown"] += 1
    shown = [p for p in proposals if p.published or p.hidden]
    ranked = sorted(shown, key=lambda p: (-votes[p.id], p.id))
    eligible = [p for p in ranked if not p.hidden]
    winners: set[int] = set()
    used: int | None = None
    if campaign.envelope is not None:
        used = 0
        for proposal in eligible:
            cost = proposal.cost or 0
            if votes[proposal.id] > 0 and used + cost <= campaign.envelope:
                winners.add(proposal.id)
                used += cost
    elif eligible and votes[eligible[0].id] > 0:
        seats = 1 if campaign.ballot.max_choices == 1 else campaign.ballot.max_choices
        winners = {p.id for p in eligible[:seats] if votes[p.id] > 0}
    lines = tuple(Line(p, votes[p.id], p.id in winners) for p in ranked)
    return Results(campaign, count, lines, used, _suppress(by_age), _suppress(by_dep))
