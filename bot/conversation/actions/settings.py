"""Settings (flows/settings.yaml): language, and campaign reminders on or off; the language
choice is also onboarding's first step, and RAPPELS NON / RAPPELS OUI work at any step."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import LANGUAGE_NAMES, Actions, Sources
from bot.conversation.effects import SetLocale, SetReminders
from bot.conversation.engine import Turn
from bot.conversation.matching import Option
from bot.domain.region import LOCALES
from bot.i18n import N_


def set_language(turn: Turn, value: Any) -> str:
    locale = str(value)
    if locale in LOCALES and locale != turn.profile.locale:
        turn.effect(SetLocale(locale))
        turn.update_profile(locale=locale)
    if turn.step == "settings.language":
        turn.notice("settings.language_set", language=turn.t(LANGUAGE_NAMES[locale]))
    return "ok"


def set_reminders(turn: Turn, on: bool) -> None:
    """Also what the keywords RAPPELS NON and RAPPELS OUI do, wherever the person is."""
    if on != turn.profile.reminders:
        turn.effect(SetReminders(on))
        turn.update_profile(reminders=on)
    turn.notice(N_("reminders.on") if on else N_("reminders.off"))


def settings_options(turn: Turn) -> list[Option]:
    t = turn.t
    reminders = N_("settings.reminders_stop") if turn.profile.reminders \
        else N_("settings.reminders_restart")
    labels = [("language", N_("settings.language_choice")), ("reminders", reminders),
              ("menu", N_("common.back"))]
    return [Option(id=i, key=str(n), label=t(label)) for n, (i, label) in enumerate(labels, 1)]


def change_setting(turn: Turn, value: Any) -> str:
    if value == "reminders":
        set_reminders(turn, not turn.profile.reminders)
    return str(value)


ACTIONS: Actions = {
    "set_language": (set_language, {"ok"}),
    "change_setting": (change_setting, {"language", "reminders", "menu"}),
}
SOURCES: Sources = {
    "settings_options": (settings_options, frozenset({"language", "reminders", "menu"})),
}
