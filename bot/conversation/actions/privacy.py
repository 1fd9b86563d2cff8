"""What is held about a person, and erasure on request (flows/privacy.yaml: "my data")."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import AGE_LABELS, LANGUAGE_NAMES, Actions, Views, codes
from bot.conversation.effects import Erase
from bot.conversation.engine import Turn


def my_data(turn: Turn) -> dict[str, Any]:
    profile, t = turn.profile, turn.t
    ctx = turn.ctx
    return {
        "language": t(LANGUAGE_NAMES.get(profile.locale, "lang.fr")),
        "consent": t.datetime(profile.consent_at) if profile.consent_at else "-",
        "age": t(AGE_LABELS[profile.age_bracket]) if profile.age_bracket else "-",
        "postcode": profile.postal_code or "-",
        "address": address_line(turn),
        "proposals": sum(ctx.proposal_counts.values()),
        "ballots": "; ".join(codes(ids) for ids in ctx.ballots.values()) or "-",
    }


def address_line(turn: Turn) -> str:
    """How the person is reached: a phone number (SMS), or an account id (a chat app: not a
    number), with the number they verified there, if any."""
    ctx, t, phone = turn.ctx, turn.t, turn.profile.phone
    if ctx.verified_address:
        return t("privacy.number_line", address=ctx.address)
    if phone:
        return t("privacy.account_phone_line", address=ctx.address, phone=phone)
    return t("privacy.account_line", address=ctx.address)


def erase_me(turn: Turn, value: Any) -> str:
    if value != "erase":
        return "kept"
    turn.effect(Erase())
    turn.forget = True
    turn.notice("privacy.erased")
    return "erased"


ACTIONS: Actions = {
    "erase_me": (erase_me, {"erased", "kept"}),
}
VIEWS: Views = {
    "my_data": my_data,
}
