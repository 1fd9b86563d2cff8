"""Submitting a proposal to a campaign open for submissions (flows/propose.yaml)."""

from __future__ import annotations

from typing import Any

from bot.channels.gsm7 import cost, is_gsm7, sms_safe
from bot.conversation.actions.common import (
    Actions,
    Sources,
    Views,
    acting_options,
    refuse,
    route,
)
from bot.conversation.effects import SubmitProposal
from bot.conversation.engine import Ref, Turn
from bot.conversation.matching import Option
from bot.domain.campaigns import Phase
from bot.domain.participants import may_propose
from bot.i18n import N_

MIN_PROPOSAL_LETTERS = 3
# An idea echoed before "On l'envoie ?" on a channel paying per segment (SMS), in GSM-7 units:
# its first words, then "…" (the sender has the whole text). A longer echo would push the
# confirmation over 2 segments, or its choices onto a second page. An idea with a character
# GSM-7 lacks (an emoji) sends the whole reply as UCS-2, where 2 segments hold 134 units.
ECHO_UNITS = 100
ECHO_UNITS_UCS2 = 40


def route_propose(turn: Turn, value: Any = None) -> str:
    return route(turn, Phase.SUBMISSION, N_("propose.none"), N_("propose.none_for_you"))


def submission_campaigns(turn: Turn) -> list[Option]:
    """Campaigns this person may send ideas to, then the others "à consulter", with why."""
    return acting_options(turn, Phase.SUBMISSION)


def check_may_propose(turn: Turn, value: Any = None) -> str:
    campaign = turn.campaign()
    if campaign is None:
        turn.notice("propose.none")
        return "refused"
    already = turn.ctx.proposal_counts.get(campaign.id, 0)
    refusal = may_propose(turn.profile, campaign, turn.now, already=already)
    return "ok" if refusal is None else refuse(turn, refusal, campaign)


def proposal_rules(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    return {
        "campaign": campaign.text("title", turn.profile.locale),
        "max": campaign.proposal_rules.max_length,
    }


def draft_proposal(turn: Turn, value: Any) -> str:
    campaign = turn.campaign()
    assert campaign is not None
    text = str(value)
    limit = campaign.proposal_rules.max_length
    if len(text) > limit:
        turn.notice("propose.too_long", length=len(text), max=limit)
        return "retry"
    if sum(ch.isalnum() for ch in text) < MIN_PROPOSAL_LETTERS:
        turn.notice("propose.too_short")
        return "retry"
    turn.data["draft"] = text
    return "ok"


def proposal_draft(turn: Turn) -> dict[str, Any]:
    text = str(turn.data.get("draft", ""))
    return {"text": echo(text) if turn.ctx.page_segments is not None else text}


def echo(text: str) -> str:
    """`text` as echoed by SMS: whole when short, else its first words and "…"."""
    room = ECHO_UNITS if is_gsm7(sms_safe(text)) else ECHO_UNITS_UCS2
    if cost(sms_safe(text)).units <= room:
        return text
    kept = ""
    for word in text.split(" "):
        longer = f"{kept} {word}" if kept else word
        if cost(sms_safe(longer + "…")).units > room:
            break
        kept = longer
    if not kept:  # one long word: cut inside it
        kept = text[:room // 2]
    return kept.rstrip(" ,;:.-") + "…"


def submit_proposal(turn: Turn, value: Any) -> str:
    if value == "edit":
        return "edit"
    campaign = turn.campaign()
    draft = turn.data.pop("draft", None)
    if value == "cancel" or campaign is None or draft is None:
        turn.notice("common.cancelled")
        return "cancelled"
    already = turn.ctx.proposal_counts.get(campaign.id, 0)
    refusal = may_propose(turn.profile, campaign, turn.now, already=already)
    if refusal is not None:
        return refuse(turn, refusal, campaign)
    turn.effect(SubmitProposal(campaign.id, draft))
    turn.notice("propose.receipt", code=Ref("proposal_code"))
    return "submitted"


ACTIONS: Actions = {
    "route_propose": (route_propose, {"one", "many", "none", "read"}),
    "check_may_propose": (check_may_propose, {"ok", "refused"}),
    "draft_proposal": (draft_proposal, {"ok", "retry"}),
    "submit_proposal": (submit_proposal, {"submitted", "edit", "cancelled", "refused"}),
}
VIEWS: Views = {
    "proposal_rules": proposal_rules,
    "proposal_draft": proposal_draft,
}
SOURCES: Sources = {
    "submission_campaigns": (submission_campaigns, None),
}
