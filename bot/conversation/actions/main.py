"""The main menu's one action (flows/main.yaml): help, also what AIDE answers anywhere."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import Actions
from bot.conversation.engine import Turn
from bot.i18n import N_


def show_help(turn: Turn, value: Any = None) -> str:
    # Where options are buttons (a chat app), not "by SMS": chosen by what the channel can
    # do, never by its name.
    key = N_("help.text_chat") if turn.ctx.buttons else N_("help.text")
    turn.notice(key, contact=turn.ctx.settings.contact)
    return "ok"


ACTIONS: Actions = {
    "show_help": (show_help, {"ok"}),
}
