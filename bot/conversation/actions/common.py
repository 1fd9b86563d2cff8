"""What several flows share: label tables, campaign lists and routing, refusals, codes, dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bot.conversation.engine import Action, Source, Turn, View
from bot.conversation.matching import Option
from bot.domain.ballots import proposal_code
from bot.domain.campaigns import Campaign, Phase
from bot.domain.participants import Refusal
from bot.i18n import N_, PluralMsg

# Each flow module's part of the tables the package assembles (see __init__.py).
Actions = dict[str, tuple[Action, set[str]]]  # name → (function, its outcomes)
Views = dict[str, View]
Sources = dict[str, tuple[Source, frozenset[str] | None]]  # name → (function, fixed option ids)

AGE_LABELS = {
    "under-15": N_("age.under_15"),
    "15-17": N_("age.15_17"),
    "18-25": N_("age.18_25"),
    "26-34": N_("age.26_34"),
    "35-49": N_("age.35_49"),
    "50-64": N_("age.50_64"),
    "65+": N_("age.65_plus"),
}
REFUSALS = {
    Refusal.NOT_ONBOARDED: N_("refusal.not_onboarded"),
    Refusal.AGE: N_("refusal.age"),
    Refusal.TERRITORY: N_("refusal.territory"),
    Refusal.PHASE: N_("refusal.phase"),
    Refusal.PHONE: N_("refusal.phone"),
}
LANGUAGE_NAMES = {"fr": N_("lang.fr"), "en": N_("lang.en"), "oc": N_("lang.oc")}


def campaign_options(turn: Turn, campaigns: Sequence[Campaign]) -> list[Option]:
    locale = turn.profile.locale
    return [
        Option(id=f"c:{c.slug}", key=str(i), label=c.text("title", locale))
        for i, c in enumerate(campaigns, 1)
    ]


def open_campaigns(turn: Turn, phase: Phase) -> list[Campaign]:
    return [c for c in turn.ctx.catalog.campaigns if c.is_open(phase, turn.now)]


def refuse(turn: Turn, refusal: Refusal, campaign: Campaign) -> str:
    title = campaign.text("title", turn.profile.locale)
    if refusal is Refusal.LIMIT:
        limit = campaign.proposal_rules.max_per_person
        turn.say(PluralMsg("refusal.limit", "refusal.limit_plural", limit, campaign=title,
                           max=limit))
    else:
        turn.notice(REFUSALS[refusal], campaign=title)
    return "refused"


def route(turn: Turn, phase: Phase, none_key: str) -> str:
    chosen = turn.campaign()
    if chosen is not None and chosen.is_open(phase, turn.now):
        return "one"
    campaigns = open_campaigns(turn, phase)
    if not campaigns:
        turn.notice(none_key)
        return "none"
    if len(campaigns) == 1:
        turn.data["campaign"] = campaigns[0].slug
        return "one"
    return "many"


def codes(ids: Sequence[int]) -> str:
    return ", ".join(proposal_code(i) for i in ids)


def until(turn: Turn, campaign: Campaign, phase: Phase) -> str:
    window = campaign.window(phase)
    if window is None or window.end is None:
        return ""
    # Windows end at midnight of the day after the last day: show the last day.
    return turn.t.date(window.end - timedelta(seconds=1))
