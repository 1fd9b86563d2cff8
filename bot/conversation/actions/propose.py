"""Submitting a proposal to a campaign open for submissions (flows/propose.yaml)."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import (
    Actions,
    Sources,
    Views,
    campaign_options,
    open_campaigns,
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


def route_propose(turn: Turn, value: Any = None) -> str:
    return route(turn, Phase.SUBMISSION, N_("propose.none"))


def submission_campaigns(turn: Turn) -> list[Option]:
    return campaign_options(turn, open_campaigns(turn, Phase.SUBMISSION))


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
    return {"text": turn.data.get("draft", "")}


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
    "route_propose": (route_propose, {"one", "many", "none"}),
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
