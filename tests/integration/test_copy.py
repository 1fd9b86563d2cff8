"""The copy faults people met, as transcripts on the console: a poll's "1 projet", no envelope
total on a ballot that has no envelope rule, STOP naming the word that brings people back (and
that word working), the idea prompt's way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from tests.conftest import FixedClock, Person, RecordingSender, code_of, open_sqlite_app

POLL = """\
slug: poll
kind: poll
title: {fr: Sondage du village}
summary: {fr: Un seul choix.}
phases:
  vote: {start: today-1, end: today+10}
ballot: {method: single}
seed_proposals:
  - {ref: market, title: {fr: Marché le samedi}}
  - {ref: fair, title: {fr: Fête en juin}}
"""


@pytest.fixture
async def town(tmp_path: Path, clock: FixedClock,
               sender: RecordingSender) -> AsyncIterator[App]:
    """The test campaigns and a one-choice poll open for votes (SQLite: this is about words)."""
    async with open_sqlite_app(tmp_path, clock, sender, {"poll.yaml": POLL}) as app:
        yield app


async def test_a_one_choice_poll_says_one_project(town: App, sender: RecordingSender) -> None:
    me = Person(town, sender)
    await me.onboard()
    market, fair = code_of(town, "Marché le samedi"), code_of(town, "Fête en juin")
    assert "C'est trop : 1 projet au maximum." in await me.say(f"VOTE {market} {fair}")


async def test_only_a_budget_ballot_shows_its_total(town: App, sender: RecordingSender) -> None:
    me = Person(town, sender)
    await me.onboard()
    garden, grocery = code_of(town, "Jardin partagé"), code_of(town, "Épicerie solidaire")
    up_to = await me.say(f"VOTE {garden} {grocery}")  # up to 3, with an envelope of 100 000 €
    assert up_to.startswith("Votre vote :") and "On valide ?" in up_to
    assert "Total" not in up_to and "100 000 €" not in up_to
    await me.say("annuler")
    playground, bench = code_of(town, "Aire de jeux"), code_of(town, "Bancs publics")
    budget = await me.say(f"VOTE {playground} {bench}")  # a budget ballot: the envelope rules
    assert "Total : 45 000 € sur 60 000 €" in budget


@pytest.mark.parametrize(("language", "word", "back"), [
    ("1", "REPRENDRE", "Bon retour !"), ("1", "START", "Bon retour !"),
    ("2", "START", "Welcome back!"), ("3", "RECOMENÇAR", "Bon retorn !")])
async def test_stop_names_a_word_that_brings_people_back(
        town: App, sender: RecordingSender, language: str, word: str, back: str) -> None:
    me = Person(town, sender)
    await me.onboard(language=language)
    stopped = await me.say("STOP")
    assert word in stopped
    assert await me.say("Bonjour") == ""  # nothing is sent after STOP...
    assert (await me.say(word.lower())).startswith(back)  # ... until the word it named


async def test_the_idea_prompt_says_how_to_leave(town: App, sender: RecordingSender) -> None:
    me = Person(town, sender)
    await me.onboard(age="2")  # 15-17: the ideas campaign is open to them
    prompt = await me.say("2")
    assert prompt.endswith("Pour abandonner, envoyez ANNULER.")
    assert prompt.count(" : ") == 0
    assert (await me.say("annuler")).startswith("C'est annulé.\n\nQue voulez-vous faire ?")
