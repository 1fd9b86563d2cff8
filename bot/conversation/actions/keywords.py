"""Keywords (flows/keywords.yaml): VOTE 1 4 and SIGNALER P12 here; AIDE: main.py; STOP,
MENU…: engine.py."""

from __future__ import annotations

import re

from bot.conversation.actions.common import codes, open_campaigns, refuse
from bot.conversation.actions.vote import check_ballot, lacks_phone, start_ballot
from bot.conversation.effects import ReportProposal
from bot.conversation.engine import LIST, Pick, Turn
from bot.conversation.matching import moved
from bot.domain.ballots import proposal_code
from bot.domain.campaigns import Campaign, Phase
from bot.domain.participants import may_vote
from bot.i18n import N_

# What the store answered to a report (bot.staff.moderation.ReportOutcome) → the reply.
REPORTED = {
    "counted": N_("report.thanks"),
    "already": N_("report.already"),
    "unavailable": N_("report.unknown"),
}


def vote_shortcut(turn: Turn, tokens: list[str]) -> str:
    """`VOTE 1 4`: straight to the confirmation. A number is a place in the campaign's list
    of proposals (the campaign on screen, else the one vote open), as that list shows it;
    a code (P12) names its proposal anywhere and so its campaign."""
    numbers: list[int] = []
    coded: list[int] = []
    for token in tokens:
        match = re.fullmatch(r"(p?)(\d{1,9})", token)
        if match is None:
            turn.notice("common.unknown_codes", codes=token[:20])
            return "vote.start"
        (coded if match.group(1) else numbers).append(int(match.group(2)))
    proposals = turn.ctx.catalog.proposals
    unknown = [i for i in coded if i not in proposals]
    if unknown:
        turn.notice("common.unknown_codes", codes=codes(unknown))
        return "vote.start"
    campaign_ids = {proposals[i].campaign_id for i in coded}
    if len(campaign_ids) > 1:
        turn.notice("vote.mixed")
        return "vote.start"
    if campaign_ids:
        campaign = turn.ctx.catalog.by_id(campaign_ids.pop())
    else:
        campaign = _campaign_of_numbers(turn)
        if campaign is None:
            return "vote.start"
    assert campaign is not None
    ids = list(coded)
    if numbers:
        listed = [p.id for p in turn.ctx.catalog.published(campaign.id)]
        if _list_changed(turn, campaign, listed, numbers):
            turn.data["campaign"] = campaign.slug
            turn.notice(N_("common.list_changed"))
            return "vote.start"
        beyond = [str(n) for n in numbers if not 1 <= n <= len(listed)]
        if beyond:
            turn.data["campaign"] = campaign.slug
            turn.notice("common.unknown_codes", codes=", ".join(beyond[:3]))
            return "vote.start"
        ids = [listed[n - 1] for n in numbers] + ids
    turn.data["campaign"] = campaign.slug
    refusal = may_vote(turn.profile, campaign, turn.now)
    if refusal is not None:
        refuse(turn, refusal, campaign)
        return "main.menu"
    if lacks_phone(turn, campaign):
        return "vote.pick"  # asks for the number (Telegram) or explains (elsewhere)
    if not check_ballot(turn, campaign, ids):
        return "vote.pick"
    turn.data["ballot"] = ids
    start_ballot(turn, campaign)
    return "vote.confirm"


def _campaign_of_numbers(turn: Turn) -> Campaign | None:
    """The campaign whose list `VOTE 1 4` numbers: the one on screen if its vote is open,
    else the only vote open; None (with a notice, or none needed) when it cannot be told."""
    chosen = turn.campaign()
    if chosen is not None and chosen.is_open(Phase.VOTE, turn.now):
        return chosen
    turn.data.pop("campaign", None)
    voting = open_campaigns(turn, Phase.VOTE)
    if len(voting) == 1:
        return voting[0]
    if voting:  # several votes open: which list the numbers are from is not known
        turn.notice(N_("vote.which_list"))
    return None  # none open: the vote flow says so


def _list_changed(turn: Turn, campaign: Campaign, listed: list[int],
                  numbers: list[int]) -> bool:
    """Whether the person typed numbers under this campaign's list as it was shown, and
    one of them now means another proposal (the list changed since)."""
    shown = turn.data.get(LIST)
    if shown is None or turn.data.get("campaign") != campaign.slug \
            or turn.flows[turn.step].source != "published_proposals":
        return False
    return moved(" ".join(map(str, numbers)), shown, [str(i) for i in listed])


def _on_screen(turn: Turn, number: int) -> int | None:
    """The proposal id numbered `number` in the list of proposals on screen, if any."""
    shown = turn.data.get(LIST)
    if shown is None or turn.step not in turn.flows.steps \
            or turn.flows[turn.step].source != "published_proposals" \
            or not 1 <= number <= len(shown):
        return None
    return int(shown[number - 1])


def report_proposal(turn: Turn, tokens: list[str]) -> None:
    """`SIGNALER P12`: report a published proposal, once per person; whether this report
    counted is the store's to say (`ReportProposal`), the reply is picked then."""
    if turn.profile.consent_at is None:
        turn.notice(N_("report.consent"))
        return
    if len(tokens) != 1:
        turn.notice(N_("report.usage"))
        return
    token = tokens[0]
    if token.startswith("p"):
        proposal_id: int | None = int(token[1:])
    else:  # SIGNALER 3: the third proposal of the list on screen
        proposal_id = _on_screen(turn, int(token))
    if proposal_id is None:
        turn.notice(N_("report.usage"))
        return
    code = proposal_code(proposal_id)
    if proposal_id not in turn.ctx.catalog.proposals:  # unknown, not published, hidden
        turn.notice(N_("report.unknown"), code=code)
        return
    turn.effect(ReportProposal(proposal_id))
    turn.say(Pick("report", REPORTED, {"code": code}))
