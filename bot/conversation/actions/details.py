"""What INFO shows beyond a step's options (engine.py `details`): a campaign's description,
or the winners its results page does not name, kept off its page so that the page fits one
SMS or two."""

from __future__ import annotations

from bot.conversation.actions.browse import results_more
from bot.conversation.engine import Turn
from bot.i18n import N_, Msg


def page_more(turn: Turn) -> Msg | None:
    """A campaign page's description (and its full title), else None: nothing more here."""
    step = turn.flows.steps.get(turn.step)
    campaign = turn.campaign()
    if step is None or step.view != "campaign_detail" or campaign is None:
        return None
    winners = results_more(turn, campaign)  # a results page: the winners it does not name
    if winners is not None:
        return Msg(N_("common.text"), {"text": winners})
    if not campaign.description:
        return None
    locale = turn.profile.locale
    return Msg(N_("details.campaign"), {"title": campaign.text("title", locale),
                                        "description": campaign.text("description", locale)})
