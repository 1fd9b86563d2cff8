"""Everyday answers on the console, through the real pipeline: "Oui !", "j'ai 16 ans", a label
with a typo, "ok 👍" at a confirmation, and the short re-ask after a miss (SQLite only: this is
about the conversation, not storage)."""

from __future__ import annotations

from bot.app import App
from bot.channels.gsm7 import cost, sms_safe
from tests.conftest import Person, RecordingSender, code_of


async def test_a_newcomer_answers_in_everyday_words(sqlite_app: App,
                                                    sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.say("Bonjour")
    consent = await me.say("francais")  # a label, without its accent
    assert "https://" in consent
    missed = await me.say("euh")
    assert missed == "Répondez 1 ou 2."
    # One SMS segment, where the old answer repeated the whole consent text.
    assert cost(sms_safe(missed)).segments == 1 < cost(sms_safe(consent)).segments
    assert await me.say("hein ?") == "Répondez 1 ou 2, ou AIDE."
    assert (await me.say("Oui !")).startswith("Vous avez :")
    assert (await me.say("j'ai 16 ans")).startswith("Votre code postal ?")
    assert (await me.say("31000")).startswith("Merci, c'est tout bon !")
    from bot.store.repo import participant_export

    data = await sqlite_app.db.run(lambda c: participant_export(c, "console", me.address))
    assert data is not None and data["participant"]["age_bracket"] == "15-17"


async def test_an_age_under_15_keeps_nothing(sqlite_app: App, sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.say("salut")
    await me.say("1")
    await me.say("d'accord")
    assert "accord d'un parent" in await me.say("12 ans")
    from bot.store.repo import participant_export

    # Kept as after a first message (to read campaigns on): no consent, no age.
    data = await sqlite_app.db.run(lambda c: participant_export(c, "console", me.address))
    assert data is not None
    assert (data["participant"]["consent_at"], data["participant"]["age_bracket"]) == \
        (None, None)


async def test_ok_confirms_a_ballot_typed_with_a_typo(sqlite_app: App,
                                                      sender: RecordingSender) -> None:
    me = Person(sqlite_app, sender)
    await me.onboard(age="18-25")
    garden = code_of(sqlite_app, "Jardin partagé")
    await me.say("Votr")  # "Voter", one letter missing
    assert "Jusqu'à 3 projets" in await me.say("Budget des lyces")
    assert f"{garden} Jardin partagé" in await me.say(garden)
    assert (await me.say("OK 👍")).startswith(f"A voté : {garden}.")
