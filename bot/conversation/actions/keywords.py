"""Keywords (flows/keywords.yaml): VOTE 3 7 12 here; AIDE: main.py; STOP, MENU…: engine.py."""

from __future__ import annotations

import re

from bot.conversation.actions.common import codes, refuse
from bot.conversation.actions.vote import check_ballot, lacks_phone, start_ballot
from bot.conversation.engine import Turn
from bot.domain.participants import may_vote


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
