"""Eligibility before choice (#10, item 6), on the console through the real pipeline.

"Voter" and "Proposer" list the campaigns one may act in; the others come after them,
"à consulter", with why (age, territory), and open their page. Someone under 15 reads
campaigns, never votes or proposes, and nothing about them is stored beyond what any first
message leaves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App, load_engine
from bot.channels.base import Inbound, numbered
from bot.conversation.actions.common import acting_options, button_label
from bot.conversation.engine import Context, EngineSettings, State, Turn
from bot.domain.campaigns import SHORT_MAX, Phase
from bot.domain.participants import Profile
from bot.i18n import I18n
from bot.staff.audit import shipped_catalog
from bot.store.tables import (
    ballot_drafts,
    ballots,
    conversations,
    follows,
    participants,
    proposals,
)
from tests.conftest import Person, RecordingSender, code_of

YOUTH = """
slug: youth-vote
kind: poll
title: {fr: Vote des jeunes, en: Youth vote, oc: Vòte dels joves}
summary: {fr: Un projet pour les 15-25 ans., en: One project for 15-25 year olds.}
audience:
  age_brackets: [15-17, 18-25]
phases:
  vote: {start: today-1, end: today+5}
  results: {start: today+6}
ballot: {method: single}
seed_proposals:
  - {ref: skate, title: {fr: Skatepark}}
  - {ref: studio, title: {fr: Studio de musique}}
"""
LOZERE = """
slug: lozere
kind: poll
title: {fr: Vote de la Lozère}
summary: {fr: Pour les habitants de la Lozère.}
audience:
  departements: ["48"]
phases:
  vote: {start: today-1, end: today+5}
  results: {start: today+6}
ballot: {method: single}
seed_proposals:
  - {ref: market, title: {fr: Marché couvert}}
  - {ref: bus, title: {fr: Navette}}
"""


@pytest.fixture
async def more(sqlite_app: App, tmp_path: Path) -> App:
    """The test campaigns, and two votes open to some people only (age, territory)."""
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "a-youth.yaml").write_text(YOUTH, encoding="utf-8")
    (folder / "b-lozere.yaml").write_text(LOZERE, encoding="utf-8")
    await sqlite_app.load_campaigns(folder)
    return sqlite_app


async def test_vote_lists_what_one_may_vote_in_then_the_others_to_read(
        more: App, sender: RecordingSender) -> None:
    me = Person(more, sender)
    await me.onboard(age="5", postcode="31000")  # 35-49, Haute-Garonne
    listing = await me.say("VOTER")
    lines = listing.splitlines()
    assert lines[0] == "Voter pour quelle campagne ?"
    assert {lines[1][2:], lines[2][2:]} == {"Budget des lycées", "Budget du village"}
    assert lines[3] == "3 Vote des jeunes (à consulter : 15-25 ans)"
    assert lines[4] == "4 Vote de la Lozère (à consulter : autre territoire)"
    page = await me.say("3")  # its page, to read: why, and no Voter
    assert page.startswith("Vote des jeunes\nUn projet pour les 15-25 ans.\n"
                           "Vous ne pouvez pas y participer (15-25 ans).\n")
    assert "Voter" not in page
    assert page.endswith("1 Suivre cette campagne\n2 Autres campagnes\n3 Menu")
    # VOTER on that page: refused, with why (the list above had said so).
    assert "réservée à d'autres tranches d'âge" in await me.say("VOTER")
    # A campaign one may vote in still goes to its ballot.
    await me.say("VOTER")
    assert "Jusqu'à 3 projets" in await me.say("1" if lines[1].endswith("lycées") else "2")


async def test_one_vote_for_me_goes_straight_to_its_ballot(more: App,
                                                           sender: RecordingSender) -> None:
    me = Person(more, sender)
    await me.onboard(age="3", postcode="48000")  # 18-25, Lozère: every vote is theirs
    listing = await me.say("VOTER")
    assert "à consulter" not in listing
    assert len([line for line in listing.splitlines() if line[:1].isdigit()]) == 4


async def test_no_vote_for_me_says_so_and_offers_their_pages(more: App,
                                                             sender: RecordingSender) -> None:
    me = Person(more, sender)
    await me.onboard(postcode="75011")  # outside Occitanie
    listing = await me.say("VOTER")
    assert listing.startswith("Aucun des votes en cours ne vous est ouvert.\n\nVous pouvez consulter :\n")
    assert "1 Budget du village (autre territoire)" in listing
    page = await me.say("Vote des jeunes")
    assert page.startswith("Vote des jeunes\n")
    assert "ne pouvez pas y participer (autre territoire)" in page and "Voter" not in page


async def test_propose_offers_only_campaigns_open_to_me(more: App,
                                                        sender: RecordingSender) -> None:
    older = Person(more, sender, address="+33600000011")
    await older.onboard(age="5")  # 35-49: the ideas campaign is for 15-25
    answer = await older.say("PROPOSER")
    assert answer.startswith("Aucune des campagnes qui recueillent des idées ne vous est "
                             "ouverte.\n\nVous pouvez consulter :\n1 Tes idées pour la Région "
                             "(15-25 ans)")
    page = await older.say("1")
    assert "Proposer" not in page and "ne pouvez pas y participer (15-25 ans)" in page
    young = Person(more, sender, address="+33600000012")
    await young.onboard(age="2")  # 15-17
    assert (await young.say("PROPOSER")).startswith("Décrivez votre idée")


async def test_a_campaign_page_offers_only_what_i_may_do(more: App,
                                                         sender: RecordingSender) -> None:
    me = Person(more, sender)
    await me.onboard(age="5", postcode="48000")
    await me.say("CAMPAGNES")
    page = await me.say("Vote des jeunes")
    assert "Voter" not in page and "15-25 ans" in page
    await me.say("CAMPAGNES")
    page = await me.say("Vote de la Lozère")
    assert "1 Voter" in page and "pas y participer" not in page


def _stored(conn: Any, address: str) -> dict[str, Any]:
    """What the database holds about an address: its participant row (less its id, address
    and dates) and how many rows each table keeps for it."""
    row = conn.execute(select(participants).where(participants.c.address == address)
                       ).mappings().one()
    pid = row["id"]
    counts = {table.name: len(conn.execute(select(table).where(column == pid)).all())
              for table, column in ((conversations, conversations.c.participant_id),
                                    (follows, follows.c.participant_id),
                                    (ballots, ballots.c.participant_id),
                                    (ballot_drafts, ballot_drafts.c.participant_id),
                                    (proposals, proposals.c.author_id))}
    person = {k: v for k, v in row.items() if k not in ("id", "address", "created_at")}
    return {"participant": person, "rows": counts}


async def test_under_15_reads_campaigns_and_nothing_about_them_is_stored(
        app: App, sender: RecordingSender) -> None:
    newcomer = Person(app, sender, address="+33600000021")
    await newcomer.say("bonjour")  # what any first message leaves
    first_message = await app.db.run(lambda c: _stored(c, newcomer.address))

    me = Person(app, sender)
    await me.say("bonjour")
    await me.say("1")
    await me.say("j'accepte")
    reply = await me.say("12 ans")
    assert reply.startswith("Merci ! Avant 15 ans, voter ou proposer demande l'accord d'un "
                            "parent")
    assert "\n\nLes campagnes :\n" in reply
    assert await app.db.run(lambda c: _stored(c, me.address)) == first_message

    page = await me.say("Budget des lycées")
    assert page.startswith("Budget des lycées\n")
    assert page.endswith("\n1 Autres campagnes")  # no Voter, Suivre or Menu for them
    assert "pas y participer" not in page  # they know why: said once, when they answered
    for word in ("VOTER", f"VOTE {code_of(app, 'Jardin partagé')}", "PROPOSER",
                 "MESDONNEES"):
        answer = await me.say(word)
        assert answer.startswith("Avant 15 ans, vous pouvez lire les campagnes, sans voter "
                                 "ni proposer.\n\nLes campagnes :"), word
    assert (await me.say("MENU")).startswith("Les campagnes :")
    await me.say("Budget des lycées")
    assert (await me.say("1")).startswith("Les campagnes :")
    assert await app.db.run(lambda c: _stored(c, me.address)) == {
        **first_message, "rows": {**first_message["rows"]}}
    step = await app.db.run(lambda c: c.execute(
        select(conversations.c.step).join(participants).where(
            participants.c.address == me.address)).scalar_one())
    assert step.startswith("browse.")


async def test_a_reader_can_still_sign_up_later(sqlite_app: App,
                                                sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.say("bonjour")
    await me.say("1")
    await me.say("1")
    await me.say("1")  # under 15
    assert (await me.say("LANGUE")).startswith("Bonjour ! Avec Votz")
    await me.say("1")
    await me.say("1")
    await me.say("2")  # now 15-17
    assert (await me.say("31000")).startswith("Merci, c'est tout bon !")


async def test_a_poster_link_opens_its_campaign_for_a_reader_too(
        sqlite_app: App, sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)

    async def open_link(slug: str) -> str:
        before = len(sender.sent)
        await sqlite_app.pipeline.handle(Inbound(channel="console", address=me.address,
                                                 text=f"/start {slug}", start_payload=slug,
                                                 received_at=sqlite_app.clock()))
        await sqlite_app.dispatcher.drain()
        return numbered(sender.sent[before:][-1][1])

    assert (await open_link("pick")).startswith("Bonjour ! Avec Votz")
    await me.say("1")
    await me.say("1")
    reader = await me.say("12")  # under 15: the linked campaign's page, to read
    assert "accord d'un parent" in reader
    assert "\n\nBudget des lycées\nChoisissez jusqu'à 3 projets.\n" in reader
    assert reader.endswith("\n1 Autres campagnes")
    assert (await open_link("budget")).startswith("Budget du village\n")


@pytest.mark.parametrize(("brackets", "age", "reason"), [
    ("[26-34, 35-49, 50-64, 65+]", "3", "dès 26 ans"),
    ("[under-15, 15-17, 18-25]", "5", "jusqu'à 25 ans"),
    ("[15-17]", "3", "15-17 ans"),
])
async def test_the_age_reason_names_who_the_vote_is_for(
        sqlite_app: App, sender: RecordingSender, tmp_path: Path,
        brackets: str, age: str, reason: str) -> None:
    (tmp_path / "ages.yaml").write_text(YOUTH.replace("[15-17, 18-25]", brackets),
                                        encoding="utf-8")
    await sqlite_app.load_campaigns(tmp_path / "ages.yaml")
    me = Person(sqlite_app, sender)
    await me.onboard(age=age)
    listing = await me.say("VOTER")
    assert f"\n3 Vote des jeunes (à consulter : {reason})\n" in listing + "\n"


# --- Telegram: a campaign to read on a button, within 32 characters --------------------------


@pytest.mark.parametrize("locale", ["fr", "en", "oc"])
@pytest.mark.parametrize(("age", "postcode", "dep"), [("35-49", "31000", "31"),
                                                      ("35-49", "75001", "75")])
def test_buttons_to_read_keep_to_32_characters(locale: str, age: str, postcode: str,
                                               dep: str) -> None:
    """The shipped campaigns on Telegram buttons: the reason after the short title where it
    fits, the title cut between words to make room (…), never over SHORT_MAX; by SMS the
    line keeps "à consulter" and the whole title."""
    now = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    catalog = shipped_catalog(Path(__file__).resolve().parents[2] / "campaigns", now)
    i18n = I18n()
    _, engine = load_engine(i18n)
    profile = Profile(id=1, locale=locale, consent_at=now, age_bracket=age,
                      postal_code=postcode, departement=dep)
    seen = 0
    for buttons in (True, False):
        ctx = Context(now=now, profile=profile, catalog=catalog, i18n=i18n, buttons=buttons,
                      settings=EngineSettings(privacy_url="https://x.fr", contact="a@x.fr"))
        turn = Turn(ctx, engine.flows, State("vote.pick_campaign", {}))
        for phase in (Phase.VOTE, Phase.SUBMISSION):
            for option in acting_options(turn, phase):
                if not option.id.startswith("r:"):
                    continue
                seen += 1
                campaign = next(c for c in catalog.campaigns if option.id == f"r:{c.slug}")
                short = campaign.label(locale)
                if buttons:
                    assert len(option.label) <= SHORT_MAX, option.label
                    assert option.label == short or option.label.endswith(")"), option.label
                else:
                    marked = i18n[locale]("browse.read_label", campaign=short, reason="")
                    assert option.label.startswith(marked[:-1]), option.label  # "… : )"
                # Its full title and why, one step away (INFO 3, Details).
                assert option.detail.startswith(campaign.text("title", locale))
                assert option.detail != option.label
    assert seen  # (35-49: the youth consultation; outside Occitanie: every campaign)


def test_a_button_keeps_the_reason_and_cuts_the_title_between_words() -> None:
    t = I18n()["fr"]

    class _Turn:  # what button_label reads: the translator
        pass

    turn = _Turn()
    turn.t = t  # type: ignore[attr-defined]
    assert button_label(turn, "Vote des jeunes", "15-25 ans") == "Vote des jeunes (15-25 ans)"
    assert button_label(turn, "Mobilité et loisirs des jeunes", "15-25 ans") == \
        "Mobilité et loisirs… (15-25 ans)"
    # Too little of the title would be left: the title alone (the reason on its page).
    assert button_label(turn, "Démo – Budget des villages", "autre territoire") == \
        "Démo – Budget des villages"
