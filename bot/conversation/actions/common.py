"""What several flows share: label tables, campaign lists and routing, refusals, codes, dates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from bot.conversation.engine import Action, Source, Turn, View
from bot.conversation.matching import Option, fold
from bot.domain.ballots import proposal_code
from bot.domain.campaigns import SHORT_MAX, Campaign, Phase
from bot.domain.participants import AGE_OPEN_END, Refusal, age_span, may_participate
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
    return [  # short titles; the full one behind INFO 3 ("3 ?", Telegram's Details)
        Option(id=f"c:{c.slug}", key=str(i), label=c.label(locale),
               detail=c.text("title", locale))
        for i, c in enumerate(campaigns, 1)
    ]


def open_campaigns(turn: Turn, phase: Phase) -> list[Campaign]:
    return [c for c in turn.ctx.catalog.campaigns if c.is_open(phase, turn.now)]


# Why a campaign is only there to read for this person: its audience leaves them out.
OUTSIDE_AUDIENCE = (Refusal.AGE, Refusal.TERRITORY)


def outside_audience(turn: Turn, campaign: Campaign) -> Refusal | None:
    """AGE or TERRITORY when the campaign's audience leaves this person out, else None."""
    refusal = may_participate(turn.profile, campaign)
    return refusal if refusal in OUTSIDE_AUDIENCE else None


def sorted_campaigns(turn: Turn, phase: Phase
                     ) -> tuple[list[Campaign], list[tuple[Campaign, Refusal]]]:
    """The campaigns open for `phase`: those this person may act in, and the others with
    why they may only read about them (age, territory)."""
    acting: list[Campaign] = []
    reading: list[tuple[Campaign, Refusal]] = []
    for campaign in open_campaigns(turn, phase):
        refusal = outside_audience(turn, campaign)
        if refusal is None:
            acting.append(campaign)
        else:
            reading.append((campaign, refusal))
    return acting, reading


def audience_reason(turn: Turn, campaign: Campaign, refusal: Refusal) -> str:
    """Who the campaign is for, in a few words: `15-25 ans`, `autre territoire`."""
    t = turn.t
    if refusal is Refusal.TERRITORY:
        return t(N_("browse.reason_territory"))
    spans = [age_span(b) for b in campaign.audience.age_brackets]
    low, high = min(s[0] for s in spans), max(s[1] for s in spans)
    if high >= AGE_OPEN_END:
        return t(N_("browse.reason_age_from"), low=low)
    if low == 0:
        return t(N_("browse.reason_age_to"), high=high)
    return t(N_("browse.reason_age"), low=low, high=high)


def readable_options(turn: Turn, reading: Sequence[tuple[Campaign, Refusal]],
                     first: int = 1, *, marked: bool = True) -> list[Option]:
    """Campaigns shown "à consulter" (`marked`; else under a heading that says so), with
    why, numbered from `first`: choosing one opens its page (`r:` ids, `select_campaign`)."""
    t = turn.t
    label = N_("browse.read_label") if marked else N_("browse.reason_label")
    options = campaign_options(turn, [campaign for campaign, _ in reading])
    return [
        # Its title alone still names it (typed as in the campaign list); its full title
        # and why it is there to read one step away (INFO 3, Telegram's Details).
        replace(option, id=f"r:{campaign.slug}", key=str(number),
                codes=(*option.codes, fold(option.label)),
                label=button_label(turn, option.label, reason) if turn.ctx.buttons
                else t(label, campaign=option.label, reason=reason),
                detail=t(N_("browse.read_label"), campaign=option.detail, reason=reason))
        for number, (option, (campaign, refusal)) in enumerate(zip(options, reading,
                                                                  strict=True), first)
        for reason in [audience_reason(turn, campaign, refusal)]
    ]


def button_label(turn: Turn, title: str, reason: str) -> str:
    """A campaign to read on a button, within SHORT_MAX characters: its short title and why
    (`Mobilité et loisirs… (15-25 ans)`), the title cut between words to make room; the
    title alone if too little of it would be left (the why is in its details and its page)."""

    def why(name: str) -> str:
        return turn.t(N_("browse.reason_label"), campaign=name, reason=reason)

    label, words = why(title), title.split()
    while len(label) > SHORT_MAX and len(words) > 1:
        words.pop()
        head = " ".join(words).rstrip(" ,;:.-–")
        if len(head) < SHORT_MAX // 3:  # "Démo…": not worth it
            break
        label = why(f"{head}…")
    return label if len(label) <= SHORT_MAX else title


def acting_options(turn: Turn, phase: Phase) -> list[Option]:
    """Campaigns open for `phase` this person may act in, then the others, "à consulter"."""
    acting, reading = sorted_campaigns(turn, phase)
    options = campaign_options(turn, acting)
    return options + readable_options(turn, reading, len(options) + 1)


def refuse(turn: Turn, refusal: Refusal, campaign: Campaign) -> str:
    title = campaign.text("title", turn.profile.locale)
    if refusal is Refusal.LIMIT:
        limit = campaign.proposal_rules.max_per_person
        turn.say(PluralMsg("refusal.limit", "refusal.limit_plural", limit, campaign=title,
                           max=limit))
    else:
        turn.notice(REFUSALS[refusal], campaign=title)
    return "refused"


def route(turn: Turn, phase: Phase, none_key: str, none_for_you_key: str) -> str:
    chosen = turn.campaign()
    if chosen is not None and chosen.is_open(phase, turn.now):
        return "one"
    acting, reading = sorted_campaigns(turn, phase)
    if len(acting) == 1:
        turn.data["campaign"] = acting[0].slug
        return "one"
    if acting:
        return "many"
    if reading:  # open, but not for this person: say so, and offer their pages to read
        turn.notice(none_for_you_key)
        turn.data["phase"] = phase.value
        return "read"
    turn.notice(none_key)
    return "none"


def codes(ids: Sequence[int]) -> str:
    return ", ".join(proposal_code(i) for i in ids)


def until(turn: Turn, campaign: Campaign, phase: Phase) -> str:
    window = campaign.window(phase)
    if window is None or window.end is None:
        return ""
    # Windows end at midnight of the day after the last day: show the last day.
    return turn.t.date(window.end - timedelta(seconds=1))
