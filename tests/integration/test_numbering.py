"""Local numbering through the real pipeline (console, SQLite): lists read 1…N as shown and
continue across pages, a number typed under a list that changed since is answered with the
list as it now is, VOTE 1 4 means the campaign's list, VOTER on a campaign's page keeps it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.staff import moderation
from bot.store.tables import ballots
from tests.conftest import FixedClock, Person, RecordingSender, code_of, open_sqlite_app

# Twelve proposals whose titles fill more than one SMS-sized screen: the list has pages.
LONG = """slug: long
kind: participatory_budget
title: {fr: Grand budget}
summary: {fr: Choisissez jusqu'à 3 projets.}
envelope: 1000000
phases:
  vote: {start: today-1, end: today+10}
ballot: {method: up_to, max_choices: 3}
seed_proposals:
""" + "".join(
    f"  - {{ref: p{n}, title: {{fr: Projet numéro {n} pour les villages du plateau}}, "
    f"cost: {n}000}}\n" for n in range(1, 13))


@pytest.fixture
async def app(tmp_path: Path, clock: FixedClock,
              sender: RecordingSender) -> AsyncIterator[App]:
    async with open_sqlite_app(tmp_path, clock, sender, {"long.yaml": LONG}) as application:
        yield application


def numbered_lines(reply: str) -> list[tuple[int, str]]:
    """(number, label) of each numbered line of a reply."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"^(\d+) (.+)$", reply, re.MULTILINE)]


async def stored_ballots(app: App) -> list[str]:
    rows = await app.db.run(lambda c: c.execute(select(ballots.c.choices)).scalars().all())
    return list(rows)


async def test_a_vote_list_reads_one_to_n_and_those_numbers_vote(
        app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    listing = await me.say("Budget des lycées")
    assert numbered_lines(listing) == [
        (1, "Jardin partagé"), (2, "Épicerie solidaire"), (3, "Vélos en prêt"),
        (4, "Fresque murale"), (5, "Bibliothèque de rue")]
    assert "(ex. 1 2)" in listing  # the example names numbers on screen
    grocery, mural = code_of(app, "Épicerie solidaire"), code_of(app, "Fresque murale")
    confirm = await me.say("2 4")
    assert confirm.startswith(f"Votre vote :\n{grocery} Épicerie solidaire\n{mural} Fresque")
    assert (await me.say("1")).startswith(f"A voté : {grocery}, {mural}.")
    assert await stored_ballots(app) == [f"{grocery[1:]},{mural[1:]}"]
    await me.say("3")
    again = await me.say("Budget des lycées")  # the ballot in the list's own numbers
    assert "Votre vote actuel : 2, 4." in again


async def test_numbers_continue_across_pages(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    first = await me.say("Grand budget")
    page_one = [n for n, _ in numbered_lines(first)]
    assert page_one[0] == 1 and page_one == list(range(1, len(page_one) + 1))
    assert len(page_one) < 12  # the list has pages
    second = await me.say("SUITE")
    page_two = [n for n, _ in numbered_lines(second)]
    assert page_two[0] == page_one[-1] + 1  # continued, not 1 again
    last = page_two[-1]
    # A number from another page is still what it was shown as.
    confirm = await me.say(f"1 {last}")
    first_code = code_of(app, "Projet numéro 1 pour les villages du plateau")
    last_code = code_of(app, f"Projet numéro {last} pour les villages du plateau")
    assert confirm.startswith(f"Votre vote :\n{first_code} Projet numéro 1 ")
    assert f"\n{last_code} Projet numéro {last} " in confirm
    assert len(numbered_lines(confirm)) == 3  # Valider, Changer, Annuler: nothing else


async def test_a_number_typed_under_a_list_that_changed_gets_the_new_list(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    await me.say("Budget des lycées")  # 1 Jardin, 2 Épicerie, 3 Vélos, 4 Fresque, 5 Biblio
    grocery = code_of(app, "Épicerie solidaire")
    await moderation.hide(app.db, [grocery], reason="duplicate", by="alice", now=clock())
    await app.refresh_catalog()
    late = await me.say("2")  # meant Épicerie solidaire, now gone: 2 is Vélos
    assert late.startswith("La liste a changé entre-temps : la voici à jour.")
    assert [label for _, label in numbered_lines(late)][:2] == ["Jardin partagé",
                                                                "Vélos en prêt"]
    assert await stored_ballots(app) == []
    bikes = code_of(app, "Vélos en prêt")
    assert (await me.say("2")).startswith(f"Votre vote :\n{bikes} Vélos en prêt")


async def test_a_number_still_meaning_the_same_is_accepted_after_a_change(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    await me.say("Budget des lycées")
    await moderation.hide(app.db, [code_of(app, "Bibliothèque de rue")], reason="duplicate",
                          by="alice", now=clock())
    await app.refresh_catalog()
    garden = code_of(app, "Jardin partagé")
    assert (await me.say("1")).startswith(f"Votre vote :\n{garden} Jardin partagé")


async def test_vote_shortcut_with_numbers_and_voter_on_a_campaign_page(
        app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    # Several votes are open: from the menu, numbers alone do not say whose list they are.
    unsure = await me.say("VOTE 1 4")
    assert unsure.startswith("Plusieurs votes sont ouverts : choisissez d'abord la campagne")
    await me.say("MENU")
    await me.say("1")  # campaigns
    page = await me.say("Budget des lycées")
    voter = next(n for n, label in numbered_lines(page) if label == "Voter")
    assert voter
    # Typed rather than chosen by number: still this campaign, not the list of votes.
    listing = await me.say("Voter")
    assert listing.startswith("Budget des lycées")
    garden, mural = code_of(app, "Jardin partagé"), code_of(app, "Fresque murale")
    confirm = await me.say("VOTE 1 4")  # under the campaign's list: its numbers
    assert confirm.startswith(f"Votre vote :\n{garden} Jardin partagé\n{mural} Fresque")
    assert (await me.say("1")).startswith(f"A voté : {garden}, {mural}.")
    beyond = await me.say("VOTE P99999")
    assert beyond.startswith("Je ne reconnais pas : P99999.")
