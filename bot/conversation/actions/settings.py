"""The language choice (flows/settings.yaml, and the first step of onboarding)."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import LANGUAGE_NAMES, Actions
from bot.conversation.effects import SetLocale
from bot.conversation.engine import Turn
from bot.domain.region import LOCALES


def set_language(turn: Turn, value: Any) -> str:
    locale = str(value)
    if locale in LOCALES and locale != turn.profile.locale:
        turn.effect(SetLocale(locale))
        turn.update_profile(locale=locale)
    if turn.step == "settings.language":
        turn.notice("settings.language_set", language=turn.t(LANGUAGE_NAMES[locale]))
    return "ok"


ACTIONS: Actions = {
    "set_language": (set_language, {"ok"}),
}
