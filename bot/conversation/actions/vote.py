"""Voting under a campaign's ballot rules (flows/vote.yaml); a vote is confirmed in cast_ballot."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import (
    Actions,
    Sources,
    Views,
    campaign_options,
    codes,
    open_campaigns,
    refuse,
    route,
    until,
)
from bot.conversation.effects import CastBallot, DropDraft, SetPhone, StartBallot
from bot.conversation.engine import Turn
from bot.conversation.matching import Option
from bot.domain.ballots import BallotProblem, ballot_cost, proposal_code, validate_ballot
from bot.domain.campaigns import BallotMethod, Campaign, Phase
from bot.domain.participants import Refusal, may_vote
from bot.i18n import N_, PluralMsg

BALLOT_PROBLEMS = {
    BallotProblem.EMPTY: N_("ballot.empty"),
    BallotProblem.TOO_MANY: N_("ballot.too_many"),
    BallotProblem.DUPLICATE: N_("ballot.duplicate"),
    BallotProblem.UNKNOWN: N_("ballot.unknown"),
    BallotProblem.OVER_BUDGET: N_("ballot.over_budget"),
    BallotProblem.UNDER_MINIMUM: N_("ballot.under_minimum"),
}


def route_vote(turn: Turn, value: Any = None) -> str:
    return route(turn, Phase.VOTE, N_("vote.none"))


def voting_campaigns(turn: Turn) -> list[Option]:
    return campaign_options(turn, open_campaigns(turn, Phase.VOTE))


def lacks_phone(turn: Turn, campaign: Campaign) -> bool:
    """The campaign wants a verified number and this person has given none."""
    return campaign.verified_phone and not turn.profile.phone


def _phone_check(turn: Turn, campaign: Campaign) -> str | None:
    """None when the campaign's phone rule is met; else the outcome to take."""
    if not lacks_phone(turn, campaign):
        return None
    if turn.ctx.asks_contact:
        return "need_phone"
    return refuse(turn, Refusal.PHONE, campaign)


def start_ballot(turn: Turn, campaign: Campaign) -> None:
    """The ballot is under way: date its draft (a nudge follows if it stays unconfirmed)."""
    effect = StartBallot(campaign.id)
    if effect not in turn.effects:
        turn.effect(effect)


def check_may_vote(turn: Turn, value: Any = None) -> str:
    campaign = turn.campaign()
    if campaign is None:
        return "refused"
    refusal = may_vote(turn.profile, campaign, turn.now)
    if refusal is not None:
        return refuse(turn, refusal, campaign)
    outcome = _phone_check(turn, campaign) or "ok"
    if outcome == "ok":
        start_ballot(turn, campaign)
    return outcome


def set_phone(turn: Turn, value: Any) -> str:
    """A number Telegram verified (the person shared their own contact)."""
    if not value:
        return "retry"
    turn.effect(SetPhone(str(value)))
    turn.update_profile(phone=str(value))
    return "ok"


def voter_key(turn: Turn, campaign: Campaign) -> str:
    if campaign.verified_phone and turn.profile.phone:
        return f"phone:{turn.profile.phone}"
    return f"participant:{turn.profile.id}"


def published_proposals(turn: Turn) -> list[Option]:
    campaign = turn.campaign()
    if campaign is None:
        return []
    locale, t = turn.profile.locale, turn.t
    options = []
    for proposal in turn.ctx.catalog.published(campaign.id):
        label = proposal.text(locale)
        if proposal.cost is not None:
            label = f"{label} ({t.euros(proposal.cost)})"
        options.append(Option(id=str(proposal.id), key=str(proposal.id), label=label,
                              codes=(proposal.code.lower(),), code=proposal.code))
    return options


def _rules_msg(campaign: Campaign, turn: Turn) -> str:
    t = turn.t
    rules = campaign.ballot
    if rules.method is BallotMethod.BUDGET:
        assert campaign.envelope is not None
        return t("vote.rules_budget", envelope=t.euros(campaign.envelope))
    if rules.method is BallotMethod.SINGLE:
        return t("vote.rules_single")
    return t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", rules.max_choices))


def ballot_rules(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    current = turn.ctx.ballots.get(campaign.id)
    t = turn.t
    return {
        "campaign": campaign.text("title", turn.profile.locale),
        "rules": _rules_msg(campaign, turn),
        "current": t("vote.current", codes=codes(current)) if current else "",
    }


def check_ballot(turn: Turn, campaign: Campaign, ids: list[int]) -> bool:
    """True when `ids` make a valid ballot; else says what is wrong."""
    proposals = turn.ctx.catalog.proposals
    problem = validate_ballot(campaign, ids, proposals)
    if problem is None:
        return True
    t = turn.t
    turn.notice(
        BALLOT_PROBLEMS[problem],
        max=campaign.ballot.max_choices,
        total=t.euros(ballot_cost(ids, proposals)),
        envelope=t.euros(campaign.envelope or 0),
        minimum=t.euros(int(campaign.ballot.min_share * (campaign.envelope or 0))),
    )
    return False


def draft_ballot(turn: Turn, value: Any) -> str:
    campaign = turn.campaign()
    assert campaign is not None
    ids = [int(v) for v in value]
    if not check_ballot(turn, campaign, ids):
        return "retry"
    turn.data["ballot"] = ids
    start_ballot(turn, campaign)
    return "ok"


def ballot_draft(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    proposals = turn.ctx.catalog.proposals
    locale = turn.profile.locale
    lines = [f"{proposal_code(i)} {proposals[i].text(locale)}"
             for i in turn.data.get("ballot", []) if i in proposals]
    total = ""
    if campaign.envelope is not None:
        total = turn.t("vote.total", total=turn.t.euros(
            ballot_cost(turn.data.get("ballot", []), proposals)),
            envelope=turn.t.euros(campaign.envelope))
    return {"choices": "\n".join(lines), "total": total}


def cast_ballot(turn: Turn, value: Any) -> str:
    if value == "change":
        return "change"
    campaign = turn.campaign()
    ids = turn.data.pop("ballot", None)
    if value == "cancel" or campaign is None or not ids:
        if value == "cancel" and campaign is not None:
            turn.effect(DropDraft(campaign.id))
        turn.notice("common.cancelled")
        return "cancelled"
    # Checked again now, against the rules and phase of this instant: the vote may have
    # closed, a proposal been hidden, or the campaign reloaded since the ballot was drafted
    # (the pipeline decides again if its catalog turns out older than what is stored).
    if not campaign.is_open(Phase.VOTE, turn.now):
        turn.notice(N_("vote.closed_unrecorded"),
                    campaign=campaign.text("title", turn.profile.locale))
        return "refused"
    refusal = may_vote(turn.profile, campaign, turn.now)
    if refusal is not None:
        return refuse(turn, refusal, campaign)
    if lacks_phone(turn, campaign):
        return refuse(turn, Refusal.PHONE, campaign)
    if not check_ballot(turn, campaign, ids):
        turn.notice(N_("vote.unrecorded"))
        return "refused"
    changed = campaign.id in turn.ctx.ballots
    turn.effect(CastBallot(campaign.id, tuple(ids), turn.profile.age_bracket,
                           turn.profile.departement, voter_key(turn, campaign)))
    receipt = N_("vote.changed") if changed else N_("vote.receipt")
    turn.notice(receipt, codes=codes(ids),
                until=until(turn, campaign, Phase.VOTE))
    return "cast"


ACTIONS: Actions = {
    "route_vote": (route_vote, {"one", "many", "none"}),
    "check_may_vote": (check_may_vote, {"ok", "refused", "need_phone"}),
    "set_phone": (set_phone, {"ok", "retry"}),
    "draft_ballot": (draft_ballot, {"ok", "retry"}),
    "cast_ballot": (cast_ballot, {"cast", "change", "cancelled", "refused"}),
}
VIEWS: Views = {
    "ballot_rules": ballot_rules,
    "ballot_draft": ballot_draft,
}
SOURCES: Sources = {
    "voting_campaigns": (voting_campaigns, None),
    "published_proposals": (published_proposals, None),
}
