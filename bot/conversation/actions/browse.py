"""Campaigns and what one can do in each right now (flows/browse.yaml); choosing a campaign;
following one (its announcements and reminders) or no longer hearing from it."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import (
    Actions,
    Sources,
    Views,
    campaign_options,
    until,
)
from bot.conversation.effects import Follow
from bot.conversation.engine import Turn
from bot.conversation.matching import Option
from bot.domain.campaigns import Moment, Phase
from bot.i18n import N_

PHASE_NAMES = {
    Phase.INFORMATION: N_("phase.information"),
    Phase.SUBMISSION: N_("phase.submission"),
    Phase.MODERATION: N_("phase.moderation"),
    Phase.VOTE: N_("phase.vote"),
    Phase.RESULTS: N_("phase.results"),
    Moment.UPCOMING: N_("phase.upcoming"),
    Moment.BETWEEN: N_("phase.between"),
    Moment.CLOSED: N_("phase.closed"),
}


def visible_campaigns(turn: Turn) -> list[Option]:
    visible = [c for c in turn.ctx.catalog.campaigns if c.visible(turn.now)]
    return campaign_options(turn, visible)


def select_campaign(turn: Turn, value: Any) -> str:
    """Also how the propose and vote flows pick a campaign when several are open."""
    turn.data = {"campaign": str(value).removeprefix("c:")}
    return "ok"


def campaign_detail(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    t, locale = turn.t, turn.profile.locale
    phase = campaign.phase_at(turn.now)
    window = campaign.window(phase) if isinstance(phase, Phase) else None
    if window is not None and window.end is not None:
        when = t("browse.until", date=until(turn, campaign, phase))  # type: ignore[arg-type]
    else:
        when = ""
    details = campaign.text("summary", locale)
    if campaign.description:
        details += "\n" + campaign.text("description", locale)
    winners = turn.ctx.catalog.winners.get(campaign.id)
    if phase is Phase.RESULTS and winners:
        proposals = turn.ctx.catalog.proposals
        chosen = "\n".join(f"{proposals[i].code} {proposals[i].text(locale)}" for i in winners)
        details += "\n" + t("browse.winners", winners=chosen)
    return {
        "title": campaign.text("title", locale),
        "details": details,
        "phase": t(PHASE_NAMES[phase]),
        "when": when,
    }


def campaign_actions(turn: Turn) -> list[Option]:
    campaign = turn.campaign()
    t = turn.t
    ids: list[tuple[str, str]] = []
    if campaign is not None and campaign.is_open(Phase.SUBMISSION, turn.now):
        ids.append(("propose", N_("browse.propose")))
    if campaign is not None and campaign.is_open(Phase.VOTE, turn.now):
        ids.append(("vote", N_("browse.vote")))
    if campaign is not None and turn.profile.onboarded:
        if turn.following.get(campaign.id):
            ids.append(("unfollow", N_("browse.unfollow")))
        else:  # no choice made yet, or asked for nothing from it: may follow it
            ids.append(("follow", N_("browse.follow")))
    ids += [("list", N_("browse.other")), ("menu", N_("common.menu"))]
    return [Option(id=i, key=str(n), label=t(label)) for n, (i, label) in enumerate(ids, 1)]


def _follow(turn: Turn, following: bool) -> str:
    campaign = turn.campaign()
    if campaign is None or not turn.profile.onboarded:
        return "ok"
    turn.effect(Follow(campaign.id, following))
    turn.following[campaign.id] = following
    title = campaign.text("title", turn.profile.locale)
    if not following:
        turn.notice("browse.unfollowed", campaign=title)
    elif turn.profile.reminders:
        turn.notice("browse.followed", campaign=title)
    else:  # RAPPELS NON holds for every campaign: say so rather than promise reminders
        turn.notice("browse.followed_muted", campaign=title)
    return "ok"


def follow_campaign(turn: Turn, value: Any = None) -> str:
    return _follow(turn, True)


def unfollow_campaign(turn: Turn, value: Any = None) -> str:
    return _follow(turn, False)


ACTIONS: Actions = {
    "select_campaign": (select_campaign, {"ok"}),
    "follow_campaign": (follow_campaign, {"ok"}),
    "unfollow_campaign": (unfollow_campaign, {"ok"}),
}
VIEWS: Views = {
    "campaign_detail": campaign_detail,
}
SOURCES: Sources = {
    "visible_campaigns": (visible_campaigns, None),
    "campaign_actions": (campaign_actions,
                         frozenset({"propose", "vote", "follow", "unfollow", "list", "menu"})),
}
