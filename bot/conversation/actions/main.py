"""The main menu's one action (flows/main.yaml): help, also what AIDE answers anywhere."""

from __future__ import annotations

from typing import Any

from bot.conversation.actions.common import Actions
from bot.conversation.engine import Turn


def show_help(turn: Turn, value: Any = None) -> str:
    turn.notice("help.text", contact=turn.ctx.settings.contact)
    return "ok"


ACTIONS: Actions = {
    "show_help": (show_help, {"ok"}),
}
