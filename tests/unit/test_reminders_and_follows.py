"""The engine's side of "Votz speaks first": RAPPELS NON / OUI, settings, following a campaign,
ballot drafts. Pure `advance`, as in test_engine.py."""

from __future__ import annotations

import dataclasses

import pytest

from bot.conversation.effects import (
    CastBallot,
    DropDraft,
    Follow,
    SetReminders,
    SetStatus,
    StartBallot,
)
from bot.conversation.engine import Decision, State, render
from bot.domain.participants import Profile, Status
from tests.unit.test_engine import I18N, MEMBER, say

MUTED = dataclasses.replace(MEMBER, reminders=False)


def text(decision: Decision) -> str:
    return render(decision, I18N, {})


def labels(decision: Decision) -> list[str]:
    return [o.label for o in decision.options]


@pytest.mark.parametrize("typed", ["RAPPELS NON", "rappels non", "Rappel non", "  Rappels : non.",
                                   "REMINDERS OFF", "reminder off", "Rapèls non", "RAPELS NON"])
def test_reminders_off_is_a_phrase_keyword_at_any_step(typed: str) -> None:
    state = State("vote.choose", {"campaign": "cc"})
    decision = say(typed, state)
    assert decision.effects == (SetReminders(False),)
    assert decision.messages[0].key == "reminders.off"
    # Back where the person was, asked the same question again.
    assert decision.state is not None
    assert decision.state.step == "vote.choose"
    assert decision.state.data["campaign"] == "cc"
    assert labels(decision) == ["Oui", "Non"]


@pytest.mark.parametrize("typed", ["RAPPELS OUI", "rappels oui", "RAPPEL OUI", "Reminders on",
                                   "RAPÈLS ÒC", "rapels oc"])
def test_reminders_on_is_a_phrase_keyword(typed: str) -> None:
    decision = say(typed, State("main.menu"), MUTED)
    assert decision.effects == (SetReminders(True),)
    assert decision.state is not None and decision.state.step == "main.menu"
    assert text(decision).startswith("C'est noté : vous recevrez à nouveau les annonces")
    assert text(decision).endswith("Pour les couper : RAPPELS NON.\n\nQue voulez-vous faire ?")


def test_reminders_confirmations_say_how_to_undo_in_each_language() -> None:
    assert "RAPPELS OUI" in text(say("rappels non", State("main.menu")))
    english = dataclasses.replace(MEMBER, locale="en")
    assert "REMINDERS ON" in text(say("reminders off", State("main.menu"), english))
    occitan = dataclasses.replace(MUTED, locale="oc")
    assert "RAPÈLS NON" in text(say("rapèls òc", State("main.menu"), occitan))


def test_reminders_already_as_asked_confirms_without_writing() -> None:
    decision = say("rappels non", State("main.menu"), MUTED)
    assert decision.effects == ()
    assert decision.messages[0].key == "reminders.off"


@pytest.mark.parametrize("typed", ["rappels", "rappels non merci", "non rappels", "oui"])
def test_other_words_are_not_the_reminders_keyword(typed: str) -> None:
    decision = say(typed, State("main.menu"))
    assert decision.effects == ()
    assert decision.messages[0].key == "common.reask"


def test_vote_with_codes_still_reads_as_the_vote_keyword() -> None:
    decision = say("VOTE P2", State("main.menu"))
    assert decision.state is not None and decision.state.step == "vote.confirm"


def test_reminders_before_onboarding_finish_onboarding_first() -> None:
    newcomer = Profile(id=1, locale="fr")
    decision = say("RAPPELS NON", State("onboarding.age"), newcomer)
    assert decision.effects == ()
    assert decision.messages[0].key == "onboarding.finish_first"
    assert decision.state is not None and decision.state.step == "onboarding.age"


def test_a_stopped_person_is_not_answered_about_reminders() -> None:
    stopped = dataclasses.replace(MEMBER, status=Status.STOPPED)
    decision = say("RAPPELS OUI", State("main.menu"), stopped)
    assert decision.silent
    assert decision.effects == ()
    assert say("START", State("main.menu"), stopped).effects == (SetStatus(Status.ACTIVE),)


def test_settings_from_the_menu_switch_reminders_and_show_their_state() -> None:
    settings = say("5", State("main.menu"))
    assert settings.state is not None and settings.state.step == "settings.menu"
    assert text(settings) == "Vos réglages :"
    assert labels(settings) == ["Langue", "Rappels : activés — les couper", "Retour"]
    off = say("2", settings.state)
    assert off.effects == (SetReminders(False),)
    assert off.state is not None and off.state.step == "settings.menu"
    assert text(off).startswith("C'est noté : plus d'annonces ni de rappels.")
    assert labels(off) == ["Langue", "Rappels : coupés — les réactiver", "Retour"]
    on = say("2", off.state, MUTED)
    assert on.effects == (SetReminders(True),)
    assert labels(on) == ["Langue", "Rappels : activés — les couper", "Retour"]


def test_settings_lead_to_the_language_and_back_to_the_menu() -> None:
    settings = say("réglages", State("main.menu"))  # by its label
    assert settings.state is not None and settings.state.step == "settings.menu"
    language = say("langue", settings.state)  # the option's label: the keyword says the same
    assert language.state is not None and language.state.step == "settings.language"
    assert say("1", settings.state).state == language.state
    back = say("3", settings.state)
    assert back.state is not None and back.state.step == "main.menu"
    english = dataclasses.replace(MEMBER, locale="en")
    assert labels(say("5", State("main.menu"), english)) == [
        "Language", "Reminders: on — turn them off", "Back"]


def test_the_language_keyword_still_goes_straight_to_the_language() -> None:
    decision = say("LANGUE", State("settings.menu"))
    assert decision.state is not None and decision.state.step == "settings.language"


def test_campaign_page_offers_to_follow_or_unfollow() -> None:
    page = State("browse.detail", {"campaign": "cc"})
    # Not understood, on a button channel: a short line and the page's buttons again.
    fresh = say("x", page, buttons=True)
    assert labels(fresh) == ["Voter", "Suivre cette campagne", "Autres campagnes", "Menu"]
    declined = say("x", page, following={7: False}, buttons=True)  # asked for nothing: may follow again
    assert "Suivre cette campagne" in labels(declined)
    following = say("x", page, following={7: True}, buttons=True)
    assert labels(following) == ["Voter", "Ne plus suivre", "Autres campagnes", "Menu"]


def test_following_then_unfollowing_a_campaign() -> None:
    page = State("browse.detail", {"campaign": "cc"})
    followed = say("2", page)
    assert followed.effects == (Follow(7, True),)
    assert followed.state is not None and followed.state.step == "browse.detail"
    assert text(followed).startswith("Vous suivez « Sondage » : vous recevrez ses annonces")
    assert "Ne plus suivre" in labels(followed)  # the page shows what was just done
    unfollowed = say("Ne plus suivre", followed.state, following={7: True})
    assert unfollowed.effects == (Follow(7, False),)
    assert text(unfollowed).startswith("Vous ne recevrez plus de messages sur « Sondage ».")
    assert "Suivre cette campagne" in labels(unfollowed)


def test_following_with_reminders_off_says_they_are_off() -> None:
    decision = say("Suivre cette campagne", State("browse.detail", {"campaign": "cc"}), MUTED)
    assert decision.effects == (Follow(7, True),)
    assert "vos rappels sont coupés" in text(decision)


def test_a_ballot_under_way_is_drafted_and_dropped_when_cancelled() -> None:
    choose = say("3", State("main.menu"))  # the one open vote
    assert choose.state is not None and choose.state.step == "vote.choose"
    assert choose.effects == (StartBallot(7),)
    confirm = say("1", choose.state)
    assert confirm.state is not None and confirm.state.step == "vote.confirm"
    assert confirm.effects == (StartBallot(7),)
    cancelled = say("3", confirm.state)  # the confirmation's Annuler
    assert cancelled.effects == (DropDraft(7),)
    assert cancelled.state is not None and cancelled.state.step == "main.menu"
    assert say("1", confirm.state).effects == (CastBallot(7, (1,), "18-25", "31",
                                                          "participant:1"),)


def test_cancel_typed_at_the_confirmation_is_the_confirmation_s_cancel() -> None:
    confirm = say("vote p2", State("main.menu"))
    assert confirm.effects == (StartBallot(7),)
    assert confirm.state is not None
    typed = say("ANNULER", confirm.state)
    assert typed.effects == (DropDraft(7),)
    assert text(typed) == "C'est annulé.\n\nQue voulez-vous faire ?"
    assert typed.state is not None and typed.state.step == "main.menu"
    # Elsewhere ANNULER is the global keyword: nothing to drop.
    assert say("annuler", State("vote.choose", {"campaign": "cc"})).effects == ()
