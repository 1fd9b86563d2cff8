"""Voting under a campaign's ballot rules (flows/vote.yaml); a vote is confirmed in cast_ballot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.conversation.actions.common import (
    Actions,
    Sources,
    Views,
    acting_options,
    codes,
    refuse,
    route,
    until,
)
from bot.conversation.effects import CastBallot, DropDraft, SetPhone, StartBallot
from bot.conversation.engine import PICKED, Selection, Turn
from bot.conversation.matching import Option
from bot.domain.ballots import BallotProblem, ballot_cost, proposal_code, validate_ballot
from bot.domain.campaigns import BallotMethod, Campaign, Phase
from bot.domain.participants import Refusal, may_vote
from bot.i18n import N_, Msg, PluralMsg

# TOO_MANY has a plural form ("1 projet", "3 projets"): see ballot_problem.
BALLOT_PROBLEMS = {
    BallotProblem.EMPTY: N_("ballot.empty"),
    BallotProblem.DUPLICATE: N_("ballot.duplicate"),
    BallotProblem.UNKNOWN: N_("ballot.unknown"),
    BallotProblem.OVER_BUDGET: N_("ballot.over_budget"),
    BallotProblem.UNDER_MINIMUM: N_("ballot.under_minimum"),
}


def route_vote(turn: Turn, value: Any = None) -> str:
    return route(turn, Phase.VOTE, N_("vote.none"), N_("vote.none_for_you"))


def voting_campaigns(turn: Turn) -> list[Option]:
    """Votes this person may cast, then the others "à consulter", with why."""
    return acting_options(turn, Phase.VOTE)


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
    for number, proposal in enumerate(turn.ctx.catalog.published(campaign.id), 1):
        # The short title in lists and buttons; the full title and cost behind INFO 3. A
        # budget ballot shows costs in the list too: choosing within an envelope needs them.
        label, detail = proposal.label(locale), proposal.text(locale)
        if proposal.cost is not None:
            detail = f"{detail} ({t.euros(proposal.cost)})"
            if campaign.ballot.method is BallotMethod.BUDGET:
                label = f"{label} ({t.euros(proposal.cost)})"
        options.append(Option(id=str(proposal.id), key=str(number), label=label,
                              codes=(proposal.code.lower(),), code=proposal.code,
                              detail=detail))
    return options


def example_numbers(turn: Turn, campaign: Campaign, most: int) -> str:
    """An example answer made of numbers from the list on screen (`1 2`): never numbers
    the person cannot see, and on a budget ballot never more than its envelope (the first
    projects in list order while their running total fits, going on past one that does
    not only while under the ballot's minimum: following the example works)."""
    listed = turn.ctx.catalog.published(campaign.id)
    if campaign.ballot.method is not BallotMethod.BUDGET or campaign.envelope is None:
        return " ".join(str(n) for n in range(1, min(most, len(listed)) + 1)) or "1"
    numbers: list[str] = []
    total, minimum = 0, int(campaign.ballot.min_share * campaign.envelope)
    for number, proposal in enumerate(listed, 1):
        if len(numbers) == most:
            break
        if total + (proposal.cost or 0) <= campaign.envelope:
            total += proposal.cost or 0
            numbers.append(str(number))
        elif numbers and total >= minimum:
            break
    return " ".join(numbers) or "1"


def _rules_msg(campaign: Campaign, turn: Turn) -> str:
    t = turn.t
    rules = campaign.ballot
    if rules.method is BallotMethod.BUDGET:
        assert campaign.envelope is not None
        return t("vote.rules_budget", envelope=t.euros(campaign.envelope),
                 example=example_numbers(turn, campaign, 3))
    if rules.method is BallotMethod.SINGLE:
        return t("vote.rules_single")
    return t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", rules.max_choices,
                              example=example_numbers(turn, campaign, 2)))


def ballot_rules(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    current = turn.ctx.ballots.get(campaign.id)
    t = turn.t
    return {
        "campaign": campaign.label(turn.profile.locale),  # short: the list needs the room
        "rules": _button_rules(campaign, turn) if turn.ctx.buttons else _rules_msg(campaign, turn),
        "current": (t("vote.current", codes=_as_listed(turn, campaign, current))
                    if current else "")
        + _picked_line(turn, campaign),
    }


def _as_listed(turn: Turn, campaign: Campaign, ids: Sequence[int]) -> str:
    """A ballot as the list below it numbers it (`1, 4`) where numbers are typed; codes on
    buttons, which show them, and for a choice no longer listed."""
    if turn.ctx.buttons:
        return codes(ids)
    listed = [p.id for p in turn.ctx.catalog.published(campaign.id)]
    return ", ".join(str(listed.index(i) + 1) if i in listed else proposal_code(i)
                     for i in ids)


def _toggles(campaign: Campaign) -> bool:
    """Several projects may be picked: on buttons, each press ticks or unticks one."""
    rules = campaign.ballot
    return rules.method is BallotMethod.BUDGET or (
        rules.method is BallotMethod.UP_TO and rules.max_choices > 1)


def _button_rules(campaign: Campaign, turn: Turn) -> str:
    """The rules where projects are tapped (buttons), not typed by number."""
    t = turn.t
    if campaign.ballot.method is BallotMethod.BUDGET:
        return t("vote.rules_budget_buttons", envelope=t.euros(campaign.envelope or 0))
    if not _toggles(campaign):
        return t("vote.rules_single_buttons")
    return t("vote.rules_up_to_buttons", n=campaign.ballot.max_choices)


def _picked_line(turn: Turn, campaign: Campaign) -> str:
    """The selection under way on buttons: its codes and count, or its total."""
    proposals = turn.ctx.catalog.proposals
    ids = [int(i) for i in turn.data.get(PICKED, ()) if int(i) in proposals]
    if not ids:
        return ""
    t = turn.t
    if campaign.ballot.method is BallotMethod.BUDGET:
        return t("vote.picked_budget", codes=codes(ids),
                 total=t.euros(ballot_cost(ids, proposals)),
                 envelope=t.euros(campaign.envelope or 0))
    return t("vote.picked", codes=codes(ids), count=len(ids), max=campaign.ballot.max_choices)


def selection(turn: Turn, ids: Sequence[str]) -> Selection:
    """A selection under way on buttons (the engine's toggles): over the number allowed or
    the envelope, the press that would make it is refused with a short notice."""
    campaign = turn.campaign()
    if campaign is None or not _toggles(campaign):
        return Selection()
    chosen = [int(i) for i in ids]
    t = turn.t
    if campaign.ballot.method is BallotMethod.BUDGET:
        envelope = campaign.envelope or 0
        total = ballot_cost(chosen, turn.ctx.catalog.proposals)
        over = Msg(N_("vote.over_envelope"), {"total": t.euros(total),
                                               "envelope": t.euros(envelope)})
        return Selection(toggles=True, refusal=over if total > envelope else None,
                         progress=t.euros(total))
    most = campaign.ballot.max_choices
    full = Msg(N_("vote.full"), {"max": most})
    return Selection(toggles=True, refusal=full if len(chosen) > most else None,
                     progress=f"{len(chosen)}/{most}")


def check_ballot(turn: Turn, campaign: Campaign, ids: list[int]) -> bool:
    """True when `ids` make a valid ballot; else says what is wrong."""
    proposals = turn.ctx.catalog.proposals
    problem = validate_ballot(campaign, ids, proposals)
    if problem is None:
        return True
    turn.say(ballot_problem(turn, campaign, ids, problem))
    return False


def ballot_problem(turn: Turn, campaign: Campaign, ids: list[int],
                   problem: BallotProblem) -> Msg:
    """What is wrong with a ballot, said with its figures."""
    if problem is BallotProblem.TOO_MANY:
        most = campaign.ballot.max_choices
        return PluralMsg("ballot.too_many", "ballot.too_many_plural", most, max=most)
    t = turn.t
    envelope = campaign.envelope or 0
    return Msg(BALLOT_PROBLEMS[problem], {
        "total": t.euros(ballot_cost(ids, turn.ctx.catalog.proposals)),
        "envelope": t.euros(envelope),
        "minimum": t.euros(int(campaign.ballot.min_share * envelope)),
    })


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
    lines = [f"{proposal_code(i)} {proposals[i].label(locale)}"
             for i in turn.data.get("ballot", []) if i in proposals]
    total = ""
    # Only a budget ballot is held to its envelope: elsewhere a total would read as a limit.
    if campaign.ballot.method is BallotMethod.BUDGET and campaign.envelope is not None:
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
    "route_vote": (route_vote, {"one", "many", "none", "read"}),
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
