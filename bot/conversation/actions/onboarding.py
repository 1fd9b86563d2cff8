"""First contact (flows/onboarding.yaml): consent, age, postcode; its language step: settings.py."""

from __future__ import annotations

import re
from typing import Any

from bot.conversation.actions.common import AGE_LABELS, Actions, Sources, Views
from bot.conversation.effects import Erase, GiveConsent, SetProfile, Unregister
from bot.conversation.engine import Turn
from bot.conversation.matching import Option
from bot.domain.campaigns import AGE_BRACKETS
from bot.domain.participants import age_span, departement_of
from bot.domain.region import OCCITANIE
from bot.i18n import N_


def privacy_notice(turn: Turn) -> dict[str, Any]:
    # What identifies the person: a phone number on SMS, an account id on a chat app.
    held = N_("privacy.your_number") if turn.ctx.verified_address \
        else N_("privacy.your_account")
    return {"url": turn.ctx.settings.privacy_url, "address": turn.t(held)}


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
    # An age ("16", "j'ai 16 ans") or a bracket as shown ("18-25") is an answer too.
    t = turn.t
    return [
        Option(id=b, key=str(i), label=t(AGE_LABELS[b]), span=age_span(b))
        for i, b in enumerate(AGE_BRACKETS, 1)
    ]


def set_age_bracket(turn: Turn, value: Any) -> str:
    if value == "under-15":
        # Under 15, French law asks for a parent's consent too: we keep nothing about them
        # (no consent, no age), only what any first message leaves; they may read campaigns.
        turn.effect(Unregister())
        turn.update_profile(consent_at=None)
        turn.notice(N_("onboarding.reader"))
        slug = turn.data.get("deep_link")
        turn.data = {}
        if slug and turn.ctx.catalog.by_slug(slug):
            turn.data["campaign"] = slug
            return "reader_campaign"
        return "reader"
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


ACTIONS: Actions = {
    "record_consent": (record_consent, {"accepted", "declined"}),
    "set_age_bracket": (set_age_bracket, {"ok", "reader", "reader_campaign"}),
    "set_postcode": (set_postcode, {"ok", "campaign", "retry"}),
}
VIEWS: Views = {
    "privacy_notice": privacy_notice,
}
SOURCES: Sources = {
    "age_brackets": (age_brackets, frozenset(AGE_BRACKETS)),
}
