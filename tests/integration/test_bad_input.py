"""Bad input gets a clear, translated answer and changes nothing it should not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App
from bot.store.tables import ballots, conversations, participants, proposals
from tests.conftest import Person, RecordingSender, code_of

NOT_UNDERSTOOD = "Répondez par un numéro de 1 à 6."  # the menu is still on screen above


async def snapshot(app: App) -> dict[str, Any]:
    def read(conn):  # type: ignore[no-untyped-def]
        return {
            "participants": [tuple(r) for r in conn.execute(
                select(participants.c.locale, participants.c.status,
                       participants.c.age_bracket, participants.c.postal_code))],
            "step": [r.step for r in conn.execute(select(conversations.c.step))],
            "ballots": [r.choices for r in conn.execute(select(ballots.c.choices))],
            "proposals": [r.title for r in conn.execute(
                select(proposals.c.title).where(proposals.c.status == "submitted"))],
        }
    return await app.db.run(read)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "🙂🎉🗳️",
        "\x00\x07\x1b[31m\u202e",
        "x" * 10_240,
        "1; DROP TABLE participants; --",
        "' OR '1'='1",
        "{0.__class__} %s %(x)s {text}",
        "SUPERCALIFRAGILISTIC",
        "<script>alert(1)</script>",
    ],
)
async def test_nonsense_at_the_menu_reasks_and_changes_nothing(
    sqlite_app: App, sender: RecordingSender, text: str
) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    before = await snapshot(sqlite_app)
    reply = await me.say(text)
    assert reply == NOT_UNDERSTOOD
    assert await snapshot(sqlite_app) == before


async def test_a_10kb_proposal_is_refused_with_its_length(sqlite_app: App,
                                                          sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard(age="2")
    await me.say("2")
    reply = await me.say("é" * 10_240)
    assert reply.startswith("Trop long : 10240 caractères pour 120 au maximum.")
    assert (await snapshot(sqlite_app))["proposals"] == []


async def test_proposal_text_is_kept_verbatim_and_safe(sqlite_app: App,
                                                       sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard(age="2")
    await me.say("2")
    tricky = "{0} %s '); DROP TABLE x; -- 🙂 <b>"
    confirm = await me.say(tricky + "\x00\x1b")
    assert f"« {tricky} »" in confirm
    await me.say("1")
    stored = (await snapshot(sqlite_app))["proposals"]
    assert [json.loads(title)["fr"] for title in stored] == [tricky]


async def test_emoji_only_proposal_is_too_short(sqlite_app: App, sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard(age="2")
    await me.say("2")
    assert (await me.say("🙂🙂🙂")).startswith("Un peu court")


async def test_vote_out_of_phase(sqlite_app: App, sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    closed = code_of(sqlite_app, "Oui")
    reply = await me.say(f"VOTE {closed}")
    assert reply.startswith("« Sondage terminé » n'en est pas à cette étape.")
    assert (await snapshot(sqlite_app))["ballots"] == []


async def test_vote_for_unpublished_or_unknown_proposal(sqlite_app: App,
                                                        sender: RecordingSender) -> None:
    author = Person(sqlite_app, sender, address="+33600000009")
    await author.onboard(age="2")
    await author.say("2")
    await author.say("Une idée pas encore relue")
    receipt = await author.say("1")
    pending = receipt.split("code ")[1].split(".")[0]
    me = Person(sqlite_app, sender)
    await me.onboard()
    assert (await me.say(f"VOTE {pending}")).startswith(f"Je ne reconnais pas : {pending}.")
    assert (await me.say("VOTE P99999")).startswith("Je ne reconnais pas : P99999.")
    await me.say("MENU")
    await me.say("3")
    await me.say("Budget des lycées")
    reply = await me.say(pending)
    assert reply.startswith(f"Je ne reconnais pas : {pending}.")
    assert (await snapshot(sqlite_app))["ballots"] == []


async def test_too_many_duplicates_and_mixed_campaigns(sqlite_app: App,
                                                       sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    codes = [code_of(sqlite_app, t) for t in (
        "Jardin partagé", "Épicerie solidaire", "Vélos en prêt", "Fresque murale")]
    assert "C'est trop : 3 projets au maximum." in await me.say("VOTE " + " ".join(codes))
    assert "Vous avez cité un projet deux fois." in await me.say(f"{codes[0]} {codes[0]}")
    bench = code_of(sqlite_app, "Bancs publics")
    assert "campagnes différentes" in await me.say(f"VOTE {codes[0]} {bench}")
    assert (await snapshot(sqlite_app))["ballots"] == []


async def test_a_second_ballot_replaces_the_first(sqlite_app: App,
                                                  sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    garden = code_of(sqlite_app, "Jardin partagé")
    bikes = code_of(sqlite_app, "Vélos en prêt")
    await me.say(f"VOTE {garden}")
    await me.say("1")
    await me.say(f"VOTE {bikes}")
    await me.say("1")
    assert (await snapshot(sqlite_app))["ballots"] == [bikes[1:]]


async def test_duplicate_delivery_is_processed_once(sqlite_app: App,
                                                    sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    assert await me.say("bonjour", provider_id="SM1")
    assert await me.say("bonjour", provider_id="SM1") == ""
    assert (await me.say("1", provider_id="SM2")).startswith("Pour participer")
    assert await me.say("1", provider_id="SM2") == ""
    assert (await snapshot(sqlite_app))["step"] == ["onboarding.consent"]


async def test_invalid_postcode_reasks(sqlite_app: App, sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.say("bonjour")
    await me.say("1")
    await me.say("1")
    await me.say("3")
    for bad in ("310", "ABCDE", "🙂", "x" * 10_000):
        reply = await me.say(bad)
        assert reply.startswith("Code postal non valide : 5 chiffres, par exemple 48000.")
    assert (await snapshot(sqlite_app))["participants"] == [("fr", "active", "18-25", None)]


async def test_a_proposal_starting_with_vote_is_a_proposal(sqlite_app: App,
                                                           sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard(age="2")
    await me.say("2")
    confirm = await me.say("Vote électronique pour les délégués de classe")
    assert "« Vote électronique pour les délégués de classe »" in confirm


async def test_vote_followed_by_words_is_not_a_command(sqlite_app: App,
                                                       sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    assert await me.say("vote pour moi") == NOT_UNDERSTOOD
    long_junk = await me.say("VOTE " + "3 " * 10 + "x")
    assert long_junk == "Répondez par un numéro de 1 à 6, ou AIDE."


async def test_many_unknown_codes_are_not_all_echoed(sqlite_app: App,
                                                     sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    await me.say("3")
    await me.say("Budget des lycées")
    reply = await me.say("xy " * 3000)
    assert reply.startswith("Je ne reconnais pas : xy, xy, xy ....")
    assert len(reply) < 600


async def test_a_campaign_that_disappears_mid_conversation(sqlite_app: App,
                                                           sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard(age="2")
    await me.say("2")  # writing a proposal for "ideas"
    from bot.store.repo import delete_campaign

    await sqlite_app.db.run(lambda c: delete_campaign(c, "ideas"))
    await sqlite_app.refresh_catalog()
    reply = await me.say("Une idée pour une campagne supprimée")
    assert reply.startswith("Oups, un souci chez nous. On reprend au menu.")
    assert (await me.say("1")).startswith("Les campagnes :")


async def test_voting_again_from_the_menu_asks_which_campaign(sqlite_app: App,
                                                              sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard()
    await me.say(f"VOTE {code_of(sqlite_app, 'Jardin partagé')}")
    await me.say("1")
    assert (await me.say("3")).startswith("Voter pour quelle campagne ?")
