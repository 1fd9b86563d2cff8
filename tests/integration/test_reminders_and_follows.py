"""RAPPELS NON / OUI, settings, following a campaign and ballot drafts, through the pipeline:
the rows they write, on SQLite and on PostgreSQL (the `app` fixture)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from bot.app import App
from bot.store.repo import participant_export
from bot.store.tables import ballot_drafts, campaigns, follows, participants
from tests.conftest import T0, FixedClock, Person, RecordingSender, code_of


async def reminders(app: App) -> list[bool]:
    rows = await app.db.run(lambda c: c.execute(select(participants.c.reminders)).all())
    return [bool(r.reminders) for r in rows]


async def follow_rows(app: App) -> list[tuple[str, bool]]:
    rows = await app.db.run(lambda c: c.execute(
        select(campaigns.c.slug, follows.c.following)
        .join(campaigns, campaigns.c.id == follows.c.campaign_id)).all())
    return [(r.slug, bool(r.following)) for r in rows]


async def drafts(app: App) -> list[dict[str, Any]]:
    rows = await app.db.run(lambda c: c.execute(
        select(campaigns.c.slug, ballot_drafts.c.updated_at, ballot_drafts.c.nudges,
               ballot_drafts.c.nudged_at)
        .join(campaigns, campaigns.c.id == ballot_drafts.c.campaign_id)).mappings().all())
    return [dict(r) for r in rows]


async def export(app: App, me: Person) -> dict[str, Any]:
    data = await app.db.run(lambda c: participant_export(c, "console", me.address))
    assert data is not None
    return data


async def test_reminders_off_and_on_by_keyword_in_any_case_or_accents(
    app: App, sender: RecordingSender
) -> None:
    me = Person(app, sender)
    await me.onboard()
    assert await reminders(app) == [True]
    off = await me.say("rappels non")
    assert off.startswith("C'est noté : plus d'annonces ni de rappels.")
    assert "Réactiver : RAPPELS OUI.\n\nQue voulez-vous faire ?\n1 Campagnes" in off
    assert await reminders(app) == [False]
    on = await me.say("Rappels Oui")
    assert on.startswith("C'est noté : vous recevrez à nouveau les annonces")
    assert await reminders(app) == [True]
    await me.say("RAPPEL NON")
    assert await reminders(app) == [False]
    await me.say("Rapèls òc")
    assert await reminders(app) == [True]
    await me.say("REMINDERS OFF.")
    assert await reminders(app) == [False]
    assert (await export(app, me))["reminders"] is False


async def test_reminders_keep_the_step_the_person_was_at(app: App,
                                                         sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("3")
    choose = await me.say("Budget des lycées")
    off = await me.say("RAPPELS NON")
    assert off.startswith("C'est noté")
    # With the ballot's list it would take 3 SMS: the notice alone, the list still above it
    # and its numbers holding: nothing lost.
    assert choose.startswith("Budget des lycées") and "Budget des lycées" not in off
    assert (await me.say("2 4")).startswith("Votre vote :")
    assert await reminders(app) == [False]


async def test_reminders_in_settings(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    settings = await me.say("5")
    assert settings == ("Vos réglages :\n1 Langue\n2 Rappels : activés — les couper\n"
                        "3 Retour")
    off = await me.say("2")
    assert off.endswith("Vos réglages :\n1 Langue\n2 Rappels : coupés — les réactiver\n"
                        "3 Retour")
    assert await reminders(app) == [False]
    await me.say("2")
    assert await reminders(app) == [True]
    assert (await me.say("1")).startswith("Votre langue ?")
    assert (await me.say("english")).startswith("Language: English.\n\nWhat would you like")
    assert "5 Settings" in await me.say("menu")


async def test_stopped_people_cannot_change_reminders(app: App,
                                                      sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("STOP")
    assert await me.say("RAPPELS NON") == ""
    assert await reminders(app) == [True]


async def test_follow_then_unfollow_a_campaign(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("campagnes")
    page = await me.say("budget des lycees")
    assert page.endswith("1 Voter\n2 Suivre cette campagne\n3 Autres campagnes\n4 Menu")
    followed = await me.say("2")
    assert followed.startswith("Vous suivez « Budget des lycées » : vous recevrez ses annonces "
                               "et rappels.\n\nBudget des lycées\n")
    assert followed.endswith("1 Voter\n2 Ne plus suivre\n3 Autres campagnes\n4 Menu")
    assert await follow_rows(app) == [("pick", True)]
    data = await export(app, me)
    assert [(f["campaign"], f["following"]) for f in data["follows"]] == [("pick", True)]
    unfollowed = await me.say("ne plus suivre")
    assert unfollowed.startswith("Vous ne recevrez plus de messages sur « Budget des lycées ».")
    assert unfollowed.endswith("2 Suivre cette campagne\n3 Autres campagnes\n4 Menu")
    assert await follow_rows(app) == [("pick", False)]
    data = await export(app, me)
    assert [(f["campaign"], f["following"]) for f in data["follows"]] == [("pick", False)]
    assert data["reminders"] is True and data["participant"]["reminders"] is True
    await me.say("2")
    assert await follow_rows(app) == [("pick", True)]  # one row per campaign, updated
    await me.say("rappels non")
    assert (await export(app, me))["reminders"] is False


async def test_erasure_forgets_follows_and_drafts(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await me.say("campagnes")
    await me.say("budget des lycees")
    await me.say("Suivre cette campagne")
    await me.say("1")  # Voter
    assert await follow_rows(app) == [("pick", True)]
    assert len(await drafts(app)) == 1
    await me.say("mesdonnees")
    await me.say("Tout effacer")
    assert "effacées" in await me.say("Oui, effacer")
    assert await follow_rows(app) == []
    assert await drafts(app) == []


async def test_a_ballot_draft_lives_until_the_ballot_is_cast(
    app: App, sender: RecordingSender, clock: FixedClock
) -> None:
    me = Person(app, sender)
    await me.onboard()
    assert await drafts(app) == []
    await me.say("3")
    await me.say("Budget des lycées")
    started = await drafts(app)
    assert [(d["slug"], d["nudges"], d["nudged_at"]) for d in started] == [("pick", 0, None)]
    assert started[0]["updated_at"] == T0
    assert (await export(app, me))["ballot_drafts"] == [
        {"campaign": "pick", "updated_at": T0.isoformat(), "nudges": 0}]
    # The scheduler nudged them; picking again dates the draft afresh, nudges start over.
    nudged_at = T0 + timedelta(hours=2)
    await app.db.run(lambda c: c.execute(update(ballot_drafts).values(
        nudges=1, nudged_at=nudged_at)))
    clock.advance(hours=3)
    garden = code_of(app, "Jardin partagé")
    assert (await me.say(garden)).startswith("Votre vote :")
    [again] = await drafts(app)
    assert (again["updated_at"], again["nudges"], again["nudged_at"]) == (
        T0 + timedelta(hours=3), 0, nudged_at)
    assert (await me.say("1")).startswith("A voté : ")
    assert await drafts(app) == []


async def test_a_ballot_draft_is_dropped_when_cancelled_at_the_confirmation(
    app: App, sender: RecordingSender
) -> None:
    me = Person(app, sender)
    await me.onboard()
    garden = code_of(app, "Jardin partagé")
    assert (await me.say(f"VOTE {garden}")).startswith("Votre vote :")
    assert [d["slug"] for d in await drafts(app)] == ["pick"]
    assert (await me.say("3")).startswith("C'est annulé.")  # the confirmation's Annuler
    assert await drafts(app) == []
    await me.say(f"VOTE {garden}")
    assert len(await drafts(app)) == 1
    assert (await me.say("annuler")).startswith("C'est annulé.")  # typed: the same
    assert await drafts(app) == []
