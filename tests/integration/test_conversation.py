"""Transcript tests, one per flow, on the console channel (real pipeline, outbox, dispatcher).

They run on SQLite and on PostgreSQL (the `app` fixture).
"""

from __future__ import annotations

from bot.app import App
from tests.conftest import FixedClock, Person, RecordingSender, code_of

MENU = "1 Campagnes\n2 Proposer une idée\n3 Voter\n4 Mes données\n5 Réglages\n6 Aide"


async def test_onboarding_in_french(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    first = await me.say("Bonjour")
    assert first.startswith("Bonjour ! Avec Votz")
    assert first.endswith("1 Français\n2 English\n3 Occitan")
    consent = await me.say("1")
    # The console's address is no phone number the network verified: not called "numéro".
    assert "l'identifiant de votre compte, votre langue" in consent and "https://" in consent
    assert (await me.say("j'accepte")).startswith("Vous avez :")
    assert (await me.say("18-25 ans")).startswith("Votre code postal ?")
    assert await me.say("31 000") == f"Merci, c'est tout bon !\n\nQue voulez-vous faire ?\n{MENU}"


async def test_onboarding_outside_occitanie_reads_but_cannot_vote(
    app: App, sender: RecordingSender
) -> None:
    me = Person(app, sender)
    done = await me.onboard(postcode="75011")
    assert "hors d'Occitanie" in done
    listing = await me.say("3")  # vote → two campaigns open, neither for them
    assert listing.startswith("Aucun des votes en cours ne vous est ouvert.\n\nVous pouvez consulter :")
    assert "2 Budget des lycées (autre territoire)" in listing
    reply = await me.say("1")  # its page, to read: no Voter there
    assert "ne pouvez pas y participer (autre territoire)" in reply and "Voter" not in reply


async def test_declining_consent_keeps_nothing(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.say("salut")
    await me.say("1")
    assert "rien gardé" in await me.say("2")
    from bot.store.repo import count_rows
    from bot.store.tables import conversations, participants

    assert await app.db.run(lambda c: count_rows(c, participants)) == 0
    assert await app.db.run(lambda c: count_rows(c, conversations)) == 0
    assert (await me.say("re")).startswith("Bonjour ! Avec Votz")


async def test_under_15_is_not_registered(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.say("bonjour")
    await me.say("1")
    await me.say("1")
    assert "accord d'un parent" in await me.say("moins de 15 ans")
    from bot.store.repo import participant_export

    # Kept as after a first message (to read campaigns on): no consent, no age, no profile.
    data = await app.db.run(lambda c: participant_export(c, "console", me.address))
    assert data is not None
    person = data["participant"]
    assert (person["consent_at"], person["age_bracket"], person["postal_code"]) == \
        (None, None, None)


async def test_browse_a_campaign(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    listing = await me.say("campagnes")
    assert listing.startswith("Les campagnes :")
    assert "Budget des lycées" in listing
    assert "Consultation archivée" not in listing  # closed campaigns are not listed
    detail = await me.say("budget des lycees")  # by label, without accents
    assert "Budget des lycées\nChoisissez jusqu'à 3 projets.\nÉtape : vote (jusqu'au 20 mars 2026)" in detail
    assert detail.endswith("1 Voter\n2 Suivre cette campagne\n3 Autres campagnes\n4 Menu")
    assert (await me.say("1")).startswith("Budget des lycées\nJusqu'à 3 projets")


async def test_propose_flow_with_receipt_and_limit(app: App,
                                                   sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard(age="2")  # 15-17: the youth consultation is open to them
    prompt = await me.say("2")
    assert prompt == ("Décrivez votre idée pour « Tes idées pour la Région » en un message "
                      "(120 caractères au plus). Pour abandonner, envoyez ANNULER.")
    confirm = await me.say("Un bus le samedi soir entre Mende et les villages")
    assert "« Un bus le samedi soir entre Mende et les villages »" in confirm
    assert (await me.say("2")).startswith("Décrivez votre idée pour « Tes idées")  # edit
    await me.say("Un bus le samedi soir")
    receipt = await me.say("envoyer")
    assert receipt.startswith("Merci ! Idée bien arrivée, code P")
    code = receipt.split("code ")[1].split(".")[0]
    await me.say("2")
    await me.say("Des concerts dans les lycées")
    assert "Idée bien arrivée" in await me.say("1")
    refused = await me.say("2")
    assert "déjà proposé 2 idées" in refused  # max_per_person: 2
    from bot.store.repo import participant_export

    data = await app.db.run(lambda c: participant_export(c, "console", me.address))
    assert data is not None
    assert next(p["code"] for p in data["proposals"]) == code
    assert {p["status"] for p in data["proposals"]} == {"submitted"}


async def test_vote_change_and_receipt(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    garden, grocery, bikes, mural = (code_of(app, t) for t in (
        "Jardin partagé", "Épicerie solidaire", "Vélos en prêt", "Fresque murale"))
    await me.say("3")
    choose = await me.say("Budget des lycées")
    assert "Jusqu'à 3 projets" in choose
    assert "\n1 Jardin partagé" in choose  # numbered 1…N, not by id
    confirm = await me.say(f"{garden}, {grocery} et {bikes}")
    assert f"{garden} Jardin partagé\n{grocery} Épicerie solidaire\n{bikes} Vélos en prêt" in confirm
    receipt = await me.say("1")
    assert receipt.startswith(f"A voté : {garden}, {grocery}, {bikes}. "
                              "Modifiable jusqu'au 20 mars 2026.")
    again = await me.say(f"VOTE {mural}")  # from the menu, with two votes open: a code
    assert again.startswith(f"Votre vote :\n{mural} Fresque murale")
    changed = await me.say("valider")
    assert changed.startswith(f"Vote modifié : {mural}.")
    from bot.store.repo import count_rows
    from bot.store.tables import ballots

    assert await app.db.run(lambda c: count_rows(c, ballots)) == 1


async def test_budget_ballot_must_fit(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    bench, playground, lights = (code_of(app, t) for t in (
        "Bancs publics", "Aire de jeux", "Éclairage solaire"))
    over = await me.say(f"VOTE {bench} {playground} {lights}")
    assert "Votre sélection dépasse l'enveloppe : 75 000 € pour 60 000 €." in over
    under = await me.say("1")  # Bancs publics, first on the list shown again
    assert "fait 10 000 € : il faut atteindre au moins 30 000 €" in under
    confirm = await me.say(f"{playground} {bench}")
    assert "Total : 45 000 € sur 60 000 €" in confirm
    assert "A voté" in await me.say("1")


async def test_my_data_and_erasure_keep_closed_ballots_anonymous(
    app: App, sender: RecordingSender, clock: FixedClock
) -> None:
    me = Person(app, sender)
    await me.onboard(postcode="48000")
    garden = code_of(app, "Jardin partagé")
    await me.say(f"VOTE {garden}")
    await me.say("1")
    data = await me.say("4")
    assert "Identifiant : +33600000001\n" in data  # the console's address: not a phone
    assert f"âge : 18-25 ans, CP : 48000\nAccord : 10 mars 2026 11:00\nIdées : 0, votes : {garden}" in data
    clock.advance(days=11)  # the vote has closed: the ballot is counted
    await me.say("MENU")
    await me.say("4")
    assert "anonymes" in await me.say("1")
    assert "vos données sont effacées" in await me.say("1")
    from sqlalchemy import select

    from bot.store.tables import ballots, participants

    rows = await app.db.run(lambda c: c.execute(
        select(ballots.c.participant_id, ballots.c.departement)).all())
    assert [tuple(r) for r in rows] == [(None, "48")]
    assert await app.db.run(lambda c: c.execute(select(participants)).all()) == []
    assert (await me.say("hello")).startswith("Bonjour ! Avec Votz")


async def test_languages_occitan_then_english(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    occitan = await me.say("LANGUE")
    assert occitan.endswith("1 Français\n2 English\n3 Occitan")
    menu_oc = await me.say("3")
    assert menu_oc.startswith("Lenga : Occitan.")
    assert "Votar" in menu_oc
    assert (await me.say("LENGA")).endswith("3 Occitan")
    menu_en = await me.say("english")
    assert menu_en.startswith("Language: English.\n\nWhat would you like to do?")
    await me.say("vote")
    assert "Up to 3 projects" in await me.say("High-school budget")


async def test_help_and_keywords_at_any_step(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("2")
    await me.say("1") if False else None
    helped = await me.say("aide")
    assert "Mots-clés : MENU, AIDE" in helped and "participation@example.org" in helped
    assert helped.endswith("Pour abandonner, envoyez ANNULER.") or "Votre" in helped
    assert (await me.say("annuler")).startswith("C'est annulé.\n\nQue voulez-vous faire ?")
    assert (await me.say("Menu")).startswith("Que voulez-vous faire ?")


async def test_stop_is_confirmed_once_then_silence_until_start(
    app: App, sender: RecordingSender
) -> None:
    me = Person(app, sender)
    await me.onboard()
    assert "ne recevrez plus de messages" in await me.say("Arrêt")
    assert await me.say("1") == ""
    assert await me.say("STOP") == ""
    assert (await me.say("reprendre")).startswith("Bon retour !")


async def test_idle_conversation_resumes_at_menu(app: App, sender: RecordingSender,
                                                 clock: FixedClock) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    clock.advance(hours=25)
    resumed = await me.say("1")
    assert resumed == f"Re-bonjour ! On reprend au menu.\n\nQue voulez-vous faire ?\n{MENU}"
    clock.advance(hours=23)
    await me.say("3")
    clock.advance(hours=23)
    assert "Jusqu'à 3 projets" in await me.say("budget des lycées")


async def test_unknown_input_reasks_briefly_then_offers_help(app: App,
                                                            sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    assert await me.say("blablabla") == "Répondez par un numéro de 1 à 6."
    assert await me.say("9") == "Répondez par un numéro de 1 à 6, ou AIDE."
    assert (await me.say("3")).startswith("Voter pour quelle campagne ?")


async def test_keywords_before_onboarding_do_not_skip_it(app: App,
                                                         sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.say("hi")
    reply = await me.say("MENU")
    assert reply.startswith("Terminons d'abord votre inscription.\n\nBonjour ! Avec Votz")
    assert "Terminons d'abord" in await me.say("VOTE 3")


async def test_results_phase_shows_the_winners(app: App, sender: RecordingSender,
                                               clock: FixedClock) -> None:
    voters = [Person(app, sender, address=f"+3361000000{n}") for n in range(3)]
    yes = code_of(app, "Oui")
    for voter in voters:
        await voter.onboard()
    clock.advance(days=-35)  # back when the poll was open
    for voter in voters:
        await voter.say(f"VOTE {yes}")
        assert "A voté" in await voter.say("1")
    clock.advance(days=35)
    await app.refresh_catalog()
    me = voters[0]
    await me.say("1")
    detail = await me.say("Sondage terminé")
    assert "Étape : vote" not in detail and "Voter" not in detail
    assert f"votants ont retenu :\n{yes} Oui" in detail


async def test_erasure_during_an_open_vote_withdraws_the_ballot(
    app: App, sender: RecordingSender
) -> None:
    me = Person(app, sender)
    for _ in range(3):  # vote, erase, come back, vote again: still one ballot
        await me.onboard()
        await me.say(f"VOTE {code_of(app, 'Jardin partagé')}")
        assert "A voté" in await me.say("1")
        await me.say("4")
        assert "un vote encore ouvert est retiré" in await me.say("1")
        await me.say("1")
    from sqlalchemy import select

    from bot.store.tables import ballots

    assert await app.db.run(lambda c: c.execute(select(ballots)).all()) == []
    await me.onboard()
    await me.say(f"VOTE {code_of(app, 'Jardin partagé')}")
    await me.say("1")
    assert len(await app.db.run(lambda c: c.execute(select(ballots)).all())) == 1
