"""The Python half of the flows: actions (what a step does), views and choice sources.

One module per flow file in `flows/`, each exporting its part of the tables; the module a
flow names an action, view or source from is where it lives (`set_language`, named by both
onboarding and settings, lives in settings.py; `select_campaign` in browse.py). What
several flows share is in common.py. Every function is pure: it reads the `Turn` and writes
notices, data and effects to it. Here one table builds both the registry the flow loader
checks names against and the behaviour the engine runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from bot.conversation.actions import (
    browse,
    details,
    keywords,
    main,
    onboarding,
    privacy,
    propose,
    settings,
    vote,
)
from bot.conversation.actions.common import LANGUAGE_NAMES, Actions, Sources, Views
from bot.conversation.engine import Behaviour
from bot.conversation.flows import Registry

_V = TypeVar("_V")


def _merge(*tables: Mapping[str, _V]) -> dict[str, _V]:
    """One table from the flows' parts; a name defined twice is a mistake."""
    merged: dict[str, _V] = {}
    for table in tables:
        twice = merged.keys() & table.keys()
        if twice:
            raise RuntimeError(f"defined twice in bot/conversation/actions: {sorted(twice)}")
        merged.update(table)
    return merged


ACTIONS: Actions = _merge(
    onboarding.ACTIONS, settings.ACTIONS, main.ACTIONS, browse.ACTIONS, propose.ACTIONS,
    vote.ACTIONS, privacy.ACTIONS,
)
VIEWS: Views = _merge(
    onboarding.VIEWS, browse.VIEWS, propose.VIEWS, vote.VIEWS, privacy.VIEWS,
)
SOURCES: Sources = _merge(
    onboarding.SOURCES, settings.SOURCES, browse.SOURCES, propose.SOURCES, vote.SOURCES,
)

REGISTRY = Registry(
    actions={name: frozenset(outcomes) for name, (_, outcomes) in ACTIONS.items()},
    views=frozenset(VIEWS),
    sources={name: ids for name, (_, ids) in SOURCES.items()},
)

BEHAVIOUR = Behaviour(
    actions={name: fn for name, (fn, _) in ACTIONS.items()},
    views=VIEWS,
    sources={name: fn for name, (fn, _) in SOURCES.items()},
    vote_shortcut=keywords.vote_shortcut,
    help=main.show_help,
    reminders=settings.set_reminders,
    report=keywords.report_proposal,
    more=details.page_more,
    selection=vote.selection,
    whole=frozenset(name for name, (_, ids) in SOURCES.items() if ids is not None),
)

__all__ = ["ACTIONS", "BEHAVIOUR", "LANGUAGE_NAMES", "REGISTRY", "SOURCES", "VIEWS"]
