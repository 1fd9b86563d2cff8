"""Keywords (flows/keywords.yaml): VOTE 3 7 12 and SIGNALER P12 here; AIDE: main.py; STOP,
MENU…: engine.py."""

from __future__ import annotations

import re

from bot.conversation.actions.common import codes, refuse
from bot.conversation.actions.vote import check_ballot, lacks_phone, start_ballot
from bot.conversation.effects import ReportProposal
from bot.conversation.engine import Pick, Turn
from bot.domain.ballots import proposal_code
from bot.domain.participants import may_vote
from bot.i18n import N_

# What the store answered to a report (bot.staff.moderation.ReportOutcome) → the reply.
REPORTED = {
    "counted": N_("report.thanks"),
    "already": N_("report.already"),
    "unavailable": N_("report.unknown"),
}


def vote_shortcut(turn: Turn, tokens: list[str]) -> str:
    """`VOTE 3 7 12`: straight to the confirmation, when every code names one campaign."""
    ids: list[int] = []
    for token in tokens:
        match = re.fullmatch(r"p?(\d{1,9})", token)
        if match is None:
            turn.notice("common.unknown_codes", codes=token[:20])
            return "vote.start"
        ids.append(int(match.group(1)))
    proposals = turn.ctx.catalog.proposals
    campaign_ids = {proposals[i].campaign_id for i in ids if i in proposals}
    unknown = [i for i in ids if i not in proposals]
    if unknown:
        turn.notice("common.unknown_codes", codes=codes(unknown))
        return "vote.start"
    if len(campaign_ids) != 1:
        turn.notice("vote.mixed")
        return "vote.start"
    campaign = turn.ctx.catalog.by_id(campaign_ids.pop())
    assert campaign is not None
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


def report_proposal(turn: Turn, tokens: list[str]) -> None:
    """`SIGNALER P12`: report a published proposal, once per person; whether this report
    counted is the store's to say (`ReportProposal`), the reply is picked then."""
    if turn.profile.consent_at is None:
        turn.notice(N_("report.consent"))
        return
    if len(tokens) != 1:
        turn.notice(N_("report.usage"))
        return
    proposal_id = int(tokens[0].lstrip("p"))
    code = proposal_code(proposal_id)
    if proposal_id not in turn.ctx.catalog.proposals:  # unknown, not published, hidden
        turn.notice(N_("report.unknown"), code=code)
        return
    turn.effect(ReportProposal(proposal_id))
    turn.say(Pick("report", REPORTED, {"code": code}))
