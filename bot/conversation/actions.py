"""The Python half of the flows: actions (what a step does), views and choice sources.

Every function here is pure: it reads the `Turn` and writes notices, data and effects to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bot.conversation.effects import (
    CastBallot,
    Erase,
    GiveConsent,
    SetLocale,
    SetPhone,
    SetProfile,
    SubmitProposal,
)
from bot.conversation.engine import Behaviour, Ref, Turn
from bot.conversation.flows import Registry
from bot.conversation.matching import Option
from bot.domain.ballots import BallotProblem, ballot_cost, validate_ballot
from bot.domain.campaigns import AGE_BRACKETS, OCCITANIE, BallotMethod, Campaign, Moment, Phase
from bot.domain.participants import Refusal, departement_of, may_propose, may_vote
from bot.i18n import LOCALES, N_, Msg, PluralMsg

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
BALLOT_PROBLEMS = {
    BallotProblem.EMPTY: N_("ballot.empty"),
    BallotProblem.TOO_MANY: N_("ballot.too_many"),
    BallotProblem.DUPLICATE: N_("ballot.duplicate"),
    BallotProblem.UNKNOWN: N_("ballot.unknown"),
    BallotProblem.OVER_BUDGET: N_("ballot.over_budget"),
    BallotProblem.UNDER_MINIMUM: N_("ballot.under_minimum"),
}
LANGUAGE_NAMES = {"fr": N_("lang.fr"), "en": N_("lang.en"), "oc": N_("lang.oc")}
MIN_PROPOSAL_LETTERS = 3


# --- helpers ---------------------------------------------------------------------------------


def _campaign_options(turn: Turn, campaigns: Sequence[Campaign]) -> list[Option]:
    locale = turn.profile.locale
    return [
        Option(id=f"c:{c.slug}", key=str(i), label=c.text("title", locale))
        for i, c in enumerate(campaigns, 1)
    ]


def _visible(turn: Turn) -> list[Campaign]:
    return [c for c in turn.ctx.catalog.campaigns if c.visible(turn.now)]


def _open(turn: Turn, phase: Phase) -> list[Campaign]:
    return [c for c in turn.ctx.catalog.campaigns if c.is_open(phase, turn.now)]


def _refuse(turn: Turn, refusal: Refusal, campaign: Campaign) -> str:
    title = campaign.text("title", turn.profile.locale)
    if refusal is Refusal.LIMIT:
        limit = campaign.proposal_rules.max_per_person
        turn.say(PluralMsg("refusal.limit", "refusal.limit_plural", limit, campaign=title,
                           max=limit))
    else:
        turn.notice(REFUSALS[refusal], campaign=title)
    return "refused"


def _route(turn: Turn, phase: Phase, none_key: str) -> str:
    chosen = turn.campaign()
    if chosen is not None and chosen.is_open(phase, turn.now):
        return "one"
    campaigns = _open(turn, phase)
    if not campaigns:
        turn.notice(none_key)
        return "none"
    if len(campaigns) == 1:
        turn.data["campaign"] = campaigns[0].slug
        return "one"
    return "many"


def _codes(ids: Sequence[int]) -> str:
    return ", ".join(f"P{i}" for i in ids)


def _until(turn: Turn, campaign: Campaign, phase: Phase) -> str:
    window = campaign.window(phase)
    if window is None or window.end is None:
        return ""
    # Windows end at midnight of the day after the last day: show the last day.
    return turn.t.date(window.end - timedelta(seconds=1))


# --- onboarding ------------------------------------------------------------------------------


def set_language(turn: Turn, value: Any) -> str:
    locale = str(value)
    if locale in LOCALES and locale != turn.profile.locale:
        turn.effect(SetLocale(locale))
        turn.update_profile(locale=locale)
    if turn.step == "settings.language":
        turn.notice("settings.language_set", language=turn.t(LANGUAGE_NAMES[locale]))
    return "ok"


def privacy_notice(turn: Turn) -> dict[str, Any]:
    return {"url": turn.ctx.settings.privacy_url}


def record_consent(turn: Turn, value: Any) -> str:
    if value == "accept":
        turn.effect(GiveConsent(turn.ctx.settings.privacy_url))
        turn.update_profile(consent_at=turn.now)
        return "accepted"
    turn.effect(Erase())
    turn.forget = True
    turn.notice("onboarding.declined")
    return "declined"


def age_brackets(turn: Turn) -> list[Option]:
    t = turn.t
    return [
        Option(id=b, key=str(i), label=t(AGE_LABELS[b])) for i, b in enumerate(AGE_BRACKETS, 1)
    ]


def set_age_bracket(turn: Turn, value: Any) -> str:
    if value == "under-15":
        # Under 15, French law asks for a parent's consent too: we keep nothing.
        turn.effect(Erase())
        turn.forget = True
        turn.notice("onboarding.too_young")
        return "too_young"
    turn.effect(SetProfile(age_bracket=str(value)))
    turn.update_profile(age_bracket=str(value))
    return "ok"


def set_postcode(turn: Turn, value: Any) -> str:
    code = re.sub(r"\s", "", str(value))
    departement = departement_of(code)
    if departement is None:
        turn.notice("onboarding.postcode_invalid")
        return "retry"
    turn.effect(SetProfile(postal_code=code, departement=departement))
    turn.update_profile(postal_code=code, departement=departement)
    if departement in OCCITANIE:
        turn.notice("onboarding.done")
    else:
        turn.notice("onboarding.done_outside")
    slug = turn.data.get("deep_link")
    if slug and turn.ctx.catalog.by_slug(slug):
        turn.data = {"campaign": slug}
        return "campaign"
    return "ok"


def show_help(turn: Turn, value: Any = None) -> str:
    turn.notice("help.text", contact=turn.ctx.settings.contact)
    return "ok"


# --- browsing --------------------------------------------------------------------------------


def visible_campaigns(turn: Turn) -> list[Option]:
    return _campaign_options(turn, _visible(turn))


def submission_campaigns(turn: Turn) -> list[Option]:
    return _campaign_options(turn, _open(turn, Phase.SUBMISSION))


def voting_campaigns(turn: Turn) -> list[Option]:
    return _campaign_options(turn, _open(turn, Phase.VOTE))


def select_campaign(turn: Turn, value: Any) -> str:
    turn.data = {"campaign": str(value).removeprefix("c:")}
    return "ok"


def campaign_detail(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    t, locale = turn.t, turn.profile.locale
    phase = campaign.phase_at(turn.now)
    window = campaign.window(phase) if isinstance(phase, Phase) else None
    if window is not None and window.end is not None:
        when = t("browse.until", date=_until(turn, campaign, phase))  # type: ignore[arg-type]
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
    ids += [("list", N_("browse.other")), ("menu", N_("common.menu"))]
    return [Option(id=i, key=str(n), label=t(label)) for n, (i, label) in enumerate(ids, 1)]


# --- proposing -------------------------------------------------------------------------------


def route_propose(turn: Turn, value: Any = None) -> str:
    return _route(turn, Phase.SUBMISSION, N_("propose.none"))


def check_may_propose(turn: Turn, value: Any = None) -> str:
    campaign = turn.campaign()
    if campaign is None:
        turn.notice("propose.none")
        return "refused"
    already = turn.ctx.proposal_counts.get(campaign.id, 0)
    refusal = may_propose(turn.profile, campaign, turn.now, already=already)
    return "ok" if refusal is None else _refuse(turn, refusal, campaign)


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
        return _refuse(turn, refusal, campaign)
    turn.effect(SubmitProposal(campaign.id, draft))
    turn.notice("propose.receipt", code=Ref("proposal_code"))
    return "submitted"


# --- voting ----------------------------------------------------------------------------------


def route_vote(turn: Turn, value: Any = None) -> str:
    return _route(turn, Phase.VOTE, N_("vote.none"))


def _lacks_phone(turn: Turn, campaign: Campaign) -> bool:
    """The campaign wants a verified number and this person has given none."""
    return campaign.verified_phone and not turn.profile.phone


def _phone_check(turn: Turn, campaign: Campaign) -> str | None:
    """None when the campaign's phone rule is met; else the outcome to take."""
    if not _lacks_phone(turn, campaign):
        return None
    if turn.ctx.channel == "telegram":
        return "need_phone"
    return _refuse(turn, Refusal.PHONE, campaign)


def check_may_vote(turn: Turn, value: Any = None) -> str:
    campaign = turn.campaign()
    if campaign is None:
        return "refused"
    refusal = may_vote(turn.profile, campaign, turn.now)
    if refusal is not None:
        return _refuse(turn, refusal, campaign)
    return _phone_check(turn, campaign) or "ok"


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
    for proposal in turn.ctx.catalog.published(campaign.id):
        label = proposal.text(locale)
        if proposal.cost is not None:
            label = f"{label} ({t.euros(proposal.cost)})"
        options.append(Option(id=str(proposal.id), key=str(proposal.id), label=label,
                              codes=(f"p{proposal.id}",)))
    return options


def _rules_msg(campaign: Campaign, turn: Turn) -> str:
    t = turn.t
    rules = campaign.ballot
    if rules.method is BallotMethod.BUDGET:
        assert campaign.envelope is not None
        return t("vote.rules_budget", envelope=t.euros(campaign.envelope))
    if rules.method is BallotMethod.SINGLE:
        return t("vote.rules_single")
    return t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", rules.max_choices))


def ballot_rules(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    current = turn.ctx.ballots.get(campaign.id)
    t = turn.t
    return {
        "campaign": campaign.text("title", turn.profile.locale),
        "rules": _rules_msg(campaign, turn),
        "current": t("vote.current", codes=_codes(current)) if current else "",
    }


def _check_ballot(turn: Turn, campaign: Campaign, ids: list[int]) -> bool:
    proposals = turn.ctx.catalog.proposals
    problem = validate_ballot(campaign, ids, proposals)
    if problem is None:
        return True
    t = turn.t
    turn.notice(
        BALLOT_PROBLEMS[problem],
        max=campaign.ballot.max_choices,
        total=t.euros(ballot_cost(ids, proposals)),
        envelope=t.euros(campaign.envelope or 0),
        minimum=t.euros(int(campaign.ballot.min_share * (campaign.envelope or 0))),
    )
    return False


def draft_ballot(turn: Turn, value: Any) -> str:
    campaign = turn.campaign()
    assert campaign is not None
    ids = [int(v) for v in value]
    if not _check_ballot(turn, campaign, ids):
        return "retry"
    turn.data["ballot"] = ids
    return "ok"


def ballot_draft(turn: Turn) -> dict[str, Any]:
    campaign = turn.campaign()
    assert campaign is not None
    proposals = turn.ctx.catalog.proposals
    locale = turn.profile.locale
    lines = [f"P{i} {proposals[i].text(locale)}" for i in turn.data.get("ballot", [])
             if i in proposals]
    total = ""
    if campaign.envelope is not None:
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
        turn.notice("common.cancelled")
        return "cancelled"
    refusal = may_vote(turn.profile, campaign, turn.now)
    if refusal is not None:
        return _refuse(turn, refusal, campaign)
    if _lacks_phone(turn, campaign):
        return _refuse(turn, Refusal.PHONE, campaign)
    if not _check_ballot(turn, campaign, ids):
        return "refused"
    changed = campaign.id in turn.ctx.ballots
    turn.effect(CastBallot(campaign.id, tuple(ids), turn.profile.age_bracket,
                           turn.profile.departement, voter_key(turn, campaign)))
    receipt = N_("vote.changed") if changed else N_("vote.receipt")
    turn.notice(receipt, codes=_codes(ids),
                until=_until(turn, campaign, Phase.VOTE))
    return "cast"


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
        turn.notice("common.unknown_codes", codes=_codes(unknown))
        return "vote.start"
    if len(campaign_ids) != 1:
        turn.notice("vote.mixed")
        return "vote.start"
    campaign = turn.ctx.catalog.by_id(campaign_ids.pop())
    assert campaign is not None
    turn.data["campaign"] = campaign.slug
    refusal = may_vote(turn.profile, campaign, turn.now)
    if refusal is not None:
        _refuse(turn, refusal, campaign)
        return "main.menu"
    if _lacks_phone(turn, campaign):
        return "vote.pick"  # asks for the number (Telegram) or explains (elsewhere)
    if not _check_ballot(turn, campaign, ids):
        return "vote.pick"
    turn.data["ballot"] = ids
    return "vote.confirm"


# --- my data ---------------------------------------------------------------------------------


def my_data(turn: Turn) -> dict[str, Any]:
    profile, t = turn.profile, turn.t
    ctx = turn.ctx
    return {
        "language": t(LANGUAGE_NAMES.get(profile.locale, "lang.fr")),
        "consent": t.datetime(profile.consent_at) if profile.consent_at else "-",
        "age": t(AGE_LABELS[profile.age_bracket]) if profile.age_bracket else "-",
        "postcode": profile.postal_code or "-",
        "address": ctx.address,
        "proposals": sum(ctx.proposal_counts.values()),
        "ballots": "; ".join(_codes(ids) for ids in ctx.ballots.values()) or "-",
    }


def erase_me(turn: Turn, value: Any) -> str:
    if value != "erase":
        return "kept"
    turn.effect(Erase())
    turn.forget = True
    turn.notice("privacy.erased")
    return "erased"


ACTIONS = {
    "set_language": (set_language, {"ok"}),
    "record_consent": (record_consent, {"accepted", "declined"}),
    "set_age_bracket": (set_age_bracket, {"ok", "too_young"}),
    "set_postcode": (set_postcode, {"ok", "campaign", "retry"}),
    "show_help": (show_help, {"ok"}),
    "select_campaign": (select_campaign, {"ok"}),
    "route_propose": (route_propose, {"one", "many", "none"}),
    "check_may_propose": (check_may_propose, {"ok", "refused"}),
    "draft_proposal": (draft_proposal, {"ok", "retry"}),
    "submit_proposal": (submit_proposal, {"submitted", "edit", "cancelled", "refused"}),
    "route_vote": (route_vote, {"one", "many", "none"}),
    "check_may_vote": (check_may_vote, {"ok", "refused", "need_phone"}),
    "set_phone": (set_phone, {"ok", "retry"}),
    "draft_ballot": (draft_ballot, {"ok", "retry"}),
    "cast_ballot": (cast_ballot, {"cast", "change", "cancelled", "refused"}),
    "erase_me": (erase_me, {"erased", "kept"}),
}
VIEWS = {
    "privacy_notice": privacy_notice,
    "campaign_detail": campaign_detail,
    "proposal_rules": proposal_rules,
    "proposal_draft": proposal_draft,
    "ballot_rules": ballot_rules,
    "ballot_draft": ballot_draft,
    "my_data": my_data,
}
SOURCES = {
    "age_brackets": (age_brackets, frozenset(AGE_BRACKETS)),
    "visible_campaigns": (visible_campaigns, None),
    "submission_campaigns": (submission_campaigns, None),
    "voting_campaigns": (voting_campaigns, None),
    "campaign_actions": (campaign_actions, frozenset({"propose", "vote", "list", "menu"})),
    "published_proposals": (published_proposals, None),
}

REGISTRY = Registry(
    actions={name: frozenset(outcomes) for name, (_, outcomes) in ACTIONS.items()},
    views=frozenset(VIEWS),
    sources={name: ids for name, (_, ids) in SOURCES.items()},
)

BEHAVIOUR = Behaviour(
    actions={name: fn for name, (fn, _) in ACTIONS.items()},
    views=VIEWS,
    sources={name: fn for name, (fn, _) in SOURCES.items()},
    vote_shortcut=vote_shortcut,
    help=show_help,
)

__all__ = ["BEHAVIOUR", "REGISTRY", "Msg"]
