"""Pure domain rules: campaign definitions, phases, eligibility, ballots, results."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.domain.ballots import BallotProblem, Proposal, validate_ballot
from bot.domain.campaigns import BallotMethod, Moment, Phase, parse_campaign
from bot.domain.participants import (
    Profile,
    Refusal,
    departement_of,
    may_participate,
    may_propose,
    may_vote,
)
from bot.domain.results import CastBallot, tally
from bot.errors import CampaignError

TODAY = date(2026, 3, 10)


def definition(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "slug": "demo",
        "kind": "participatory_budget",
        "title": {"fr": "Démo"},
        "summary": {"fr": "Résumé"},
        "phases": {
            "submission": {"start": "2024-03-15", "end": "2024-05-15"},
            "vote": {"start": "2024-09-16", "end": "2024-10-16"},
            "results": {"start": "2024-10-17"},
        },
    }
    raw.update(overrides)
    return raw


def parse(**overrides: Any):  # type: ignore[no-untyped-def]
    return parse_campaign(definition(**overrides), file="demo.yaml", today=TODAY)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_phase_dates_are_paris_days_with_inclusive_end() -> None:
    campaign = parse()
    vote = campaign.window(Phase.VOTE)
    assert vote is not None
    assert vote.start == at("2024-09-16T00:00:00+02:00")
    assert vote.end == at("2024-10-17T00:00:00+02:00")
    assert campaign.phase_at(at("2024-10-16T23:59:00+02:00")) is Phase.VOTE
    assert campaign.phase_at(at("2024-10-17T00:00:00+02:00")) is Phase.RESULTS
    assert campaign.phase_at(at("2024-03-14T12:00:00+01:00")) is Moment.UPCOMING
    assert campaign.phase_at(at("2024-06-01T12:00:00+02:00")) is Moment.BETWEEN


def test_relative_dates_follow_the_day_of_loading() -> None:
    campaign = parse(phases={"vote": {"start": "today-2", "end": "today+3"}})
    vote = campaign.window(Phase.VOTE)
    assert vote is not None
    assert vote.start == at("2026-03-08T00:00:00+01:00")
    assert campaign.is_open(Phase.VOTE, at("2026-03-10T12:00:00+01:00"))


def test_defaults_follow_the_programme() -> None:
    campaign = parse()
    assert campaign.proposal_rules.max_length == 280
    assert campaign.ballot.method is BallotMethod.UP_TO
    assert campaign.ballot.max_choices == 3
    assert len(campaign.audience.departements) == 13
    assert campaign.text("title", "oc") == "Démo"  # falls back to French


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"slug": "Bad Slug"}, "slug", "lowercase"),
        ({"kind": "referendum"}, "kind", "one of"),
        ({"title": {"en": "Only English"}}, "title", "French text (fr) is required"),
        ({"title": {"fr": "x", "de": "y"}}, "title", "unknown language"),
        ({"phases": {"vote": {"start": "2024-13-01"}}}, "phases.vote.start", "not a date"),
        ({"phases": {"vote": {"start": "2024-10-01", "end": "2024-09-01"}}}, "phases.vote.end",
         "ends before"),
        ({"phases": {"referendum": {"start": "2024-10-01"}}}, "phases.referendum",
         "unknown phase"),
        ({"phases": {"submission": {"start": "2024-03-01", "end": "2024-04-01"},
                     "vote": {"start": "2024-03-15"}}}, "phases.vote.start", "overlaps"),
        ({"ballot": {"method": "budget"}}, "envelope", "needs an envelope"),
        ({"ballot": {"method": "ranked"}}, "ballot.method", "one of"),
        ({"ballot": {"max_choices": 0}}, "ballot.max_choices", "whole number"),
        ({"audience": {"age_brackets": ["12-14"]}}, "audience.age_brackets", "unknown bracket"),
        ({"envelope": 1000, "seed_proposals": [{"ref": "a", "title": {"fr": "A"}}]},
         "seed_proposals[0].cost", "need costs"),
        ({"seed_proposals": [{"ref": False, "title": {"fr": "A"}}]}, "seed_proposals[0].ref",
         "quote it"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"description": {"en": "Only English"}}, "description", "French text (fr)"),
        ({"proposals": 5}, "proposals", "mapping"),
        ({"ballot": "single"}, "ballot", "mapping"),
        ({"audience": {"departements": "31"}}, "audience.departements", "a list"),
        ({"audience": {"departements": 31}}, "audience.departements", "a list"),
        ({"phases": {"vote": {"start": "today+99999999"}}}, "phases.vote.start", "too far"),
        ({"ballot": {"min_share": True}}, "ballot.min_share", "share between 0 and 1"),
    ],
)
def test_bad_definitions_name_field_and_problem(overrides: dict[str, Any], field: str,
                                                problem: str) -> None:
    with pytest.raises(CampaignError) as caught:
        parse(**overrides)
    assert caught.value.file == "demo.yaml"
    assert caught.value.where == field
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("postal", "departement"),
    [("31000", "31"), ("48000", "48"), ("09100", "09"), ("20000", "2A"), ("20200", "2B"),
     ("97400", "974"), ("75 001", "75"), ("3100", None), ("ABCDE", None), ("00100", None),
     ("", None)],
)
def test_departement_of_postal_code(postal: str, departement: str | None) -> None:
    assert departement_of(postal) == departement


def test_eligibility() -> None:
    campaign = parse(audience={"age_brackets": ["15-17", "18-25"], "departements": ["48"]})
    now = at("2024-09-20T12:00:00+02:00")
    consented = datetime(2024, 1, 1, tzinfo=UTC)
    young_lozere = Profile(1, "fr", consented, "18-25", "48000", "48")
    assert may_vote(young_lozere, campaign, now) is None
    assert may_vote(Profile(1, "fr", consented, "35-49", "48000", "48"), campaign,
                    now) is Refusal.AGE
    assert may_vote(Profile(1, "fr", consented, "18-25", "31000", "31"), campaign,
                    now) is Refusal.TERRITORY
    assert may_participate(Profile(1, "fr"), campaign) is Refusal.NOT_ONBOARDED
    assert may_propose(young_lozere, campaign, now, already=0) is Refusal.PHASE
    during = at("2024-04-01T12:00:00+02:00")
    assert may_propose(young_lozere, campaign, during, already=2) is None
    assert may_propose(young_lozere, campaign, during, already=3) is Refusal.LIMIT
    assert may_vote(young_lozere, campaign, during) is Refusal.PHASE


def _proposals(campaign_id: int, costs: dict[int, int | None]) -> dict[int, Proposal]:
    return {i: Proposal(i, campaign_id, {"fr": f"P{i}"}, cost) for i, cost in costs.items()}


def test_ballot_validation_up_to() -> None:
    campaign = parse()
    proposals = _proposals(0, {1: None, 2: None, 3: None, 4: None})
    proposals[5] = Proposal(5, 0, {"fr": "pending"}, published=False)
    proposals[6] = Proposal(6, 99, {"fr": "elsewhere"})
    assert validate_ballot(campaign, [1, 2, 3], proposals) is None
    assert validate_ballot(campaign, [], proposals) is BallotProblem.EMPTY
    assert validate_ballot(campaign, [1, 2, 3, 4], proposals) is BallotProblem.TOO_MANY
    assert validate_ballot(campaign, [1, 1], proposals) is BallotProblem.DUPLICATE
    assert validate_ballot(campaign, [5], proposals) is BallotProblem.UNKNOWN
    assert validate_ballot(campaign, [6], proposals) is BallotProblem.UNKNOWN
    assert validate_ballot(campaign, [42], proposals) is BallotProblem.UNKNOWN


def test_ballot_validation_budget() -> None:
    campaign = parse(envelope=100, ballot={"method": "budget", "min_share": 0.5})
    proposals = _proposals(0, {1: 60, 2: 30, 3: 20, 4: 50})
    assert validate_ballot(campaign, [1, 2], proposals) is None
    assert validate_ballot(campaign, [1, 2, 3], proposals) is BallotProblem.OVER_BUDGET
    assert validate_ballot(campaign, [3], proposals) is BallotProblem.UNDER_MINIMUM
    assert validate_ballot(campaign, [4, 3], proposals) is None


def test_tally_envelope_winners_skip_what_does_not_fit_and_suppress_small_cells() -> None:
    campaign = parse(envelope=100)
    proposals = list(_proposals(0, {1: 70, 2: 50, 3: 30, 4: 10}).values())
    ballots = (
        [CastBallot((1, 2), "18-25", "31")] * 6
        + [CastBallot((2, 3), "65+", "48")] * 2
        + [CastBallot((3,), "18-25", "31")]
    )
    results = tally(campaign, proposals, ballots)
    assert results.ballots == 9
    assert [(line.proposal.id, line.votes) for line in results.lines] == [
        (2, 8), (1, 6), (3, 3), (4, 0)]
    winners = {line.proposal.id for line in results.lines if line.winner}
    # 2 (50) fits, 1 (70) does not, 3 (30) fits: 80 of 100 used; 4 has no vote.
    assert winners == {2, 3}
    assert results.envelope_used == 80
    # 65+ (2) is hidden; 18-25 too, or the total (9) would give 65+ away.
    assert results.by_age == {"18-25": None, "65+": None}
    assert results.by_departement == {"31": None, "48": None}


def test_small_cells_are_hidden_without_giving_each_other_away() -> None:
    campaign = parse()
    ballots = ([CastBallot((1,), "18-25", "31")] * 9 + [CastBallot((1,), "26-34", "31")] * 6
               + [CastBallot((1,), "65+", "31")] * 2 + [CastBallot((1,), "50-64", "31")] * 3)
    results = tally(campaign, [], ballots)
    assert results.by_age == {"18-25": 9, "26-34": 6, "50-64": None, "65+": None}
    ballots += [CastBallot((1,), "50-64", "31")] * 2  # 50-64 reaches 5: only 65+ is small
    assert tally(campaign, [], ballots).by_age == {"18-25": 9, "26-34": 6, "50-64": None,
                                                   "65+": None}
    assert tally(campaign, [], ballots).by_departement == {"31": 22}


def test_tally_without_envelope_ranks_by_votes_then_id() -> None:
    campaign = parse(ballot={"method": "single"})
    proposals = list(_proposals(0, {1: None, 2: None, 3: None}).values())
    ballots = [CastBallot((2,), None, None), CastBallot((3,), None, None)]
    results = tally(campaign, proposals, ballots)
    assert [line.proposal.id for line in results.lines] == [2, 3, 1]
    assert [line.winner for line in results.lines] == [True, False, False]
