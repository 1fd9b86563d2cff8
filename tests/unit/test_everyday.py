"""Everyday answers: yes/no words, an age, labels with a typo, and the brief re-ask after a miss.
Pure matching and pure `advance`, as in test_engine.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.conversation.effects import CastBallot, Erase, GiveConsent, SetProfile, Unregister
from bot.conversation.engine import Decision, State, render
from bot.conversation.matching import Option, match_one, near
from bot.domain.participants import Profile
from bot.errors import FlowError
from tests.unit.test_engine import ENGINE, I18N, MEMBER, say
from tests.unit.test_flows import edit, load

NEWCOMER = Profile(id=1, locale="fr")
YES_NO = (Option("accept", "1", "J'accepte", means="yes"),
          Option("decline", "2", "Je refuse", means="no"))
ANSWERS = ENGINE.flows.answers


def text(decision: Decision) -> str:
    return render(decision, I18N, {})


def step_of(decision: Decision) -> str:
    assert decision.state is not None
    return decision.state.step


# --- yes / no words ---------------------------------------------------------------------------

YES = {"fr": ["oui", "Oui !", "OUAIS", "ok", "OK 👍", "d'accord", "D'accord.", "daccord",
              "j'accepte", "accepte"],
       "en": ["yes", "Yes!", "ok", "Ok."],
       "oc": ["òc", "Òc !", "oc", "d'acòrdi", "D'acordi"]}
NO = {"fr": ["non", "Non.", "NON !"], "en": ["no", "No 🙁"], "oc": ["non", "Non"]}


@pytest.mark.parametrize(("locale", "typed"), [(lang, w) for lang, ws in YES.items() for w in ws])
def test_yes_words_give_consent_in_each_language(locale: str, typed: str) -> None:
    decision = say(typed, State("onboarding.consent"), dataclasses.replace(NEWCOMER, locale=locale))
    assert decision.effects == (GiveConsent("https://example.org/p"),)
    assert step_of(decision) == "onboarding.age"


@pytest.mark.parametrize(("locale", "typed"), [(lang, w) for lang, ws in NO.items() for w in ws])
def test_no_words_decline_consent_in_each_language(locale: str, typed: str) -> None:
    decision = say(typed, State("onboarding.consent"), dataclasses.replace(NEWCOMER, locale=locale))
    assert decision.effects == (Erase(),)
    assert decision.state is None


def test_yes_confirms_a_ballot_and_no_cancels_it() -> None:
    draft = State("vote.confirm", {"campaign": "cc", "ballot": [2]})
    assert say("Oui !", draft).effects == (CastBallot(7, (2,), "18-25", "31", "participant:1"),)
    cancelled = say("non", draft)
    assert not any(isinstance(e, CastBallot) for e in cancelled.effects)
    assert step_of(cancelled) == "main.menu"


def test_yes_sends_an_idea_and_no_keeps_the_data() -> None:
    idea = say("ok", State("propose.confirm", {"campaign": "cc", "draft": "Des bancs"}))
    assert step_of(idea) != "propose.confirm"
    assert "common.reask" not in [getattr(m, "key", "") for m in idea.messages]
    kept = say("Non", State("privacy.confirm_delete"))
    assert kept.effects == () and step_of(kept) == "main.menu"
    erased = say("oui", State("privacy.confirm_delete"))
    assert erased.effects == (Erase(),)


def test_yes_no_words_choose_nothing_where_no_choice_means_yes_or_no() -> None:
    assert match_one("oui", (Option("a", "1", "Campagnes"), Option("b", "2", "Voter")),
                     answers=ANSWERS) is None
    decision = say("oui", State("main.menu"))
    assert decision.messages[0].key == "common.reask"
    assert step_of(decision) == "main.menu"


def test_a_label_wins_over_a_yes_no_word() -> None:
    poll = (Option("1", "1", "Non"), Option("2", "2", "Oui", means="no"))
    assert match_one("non", poll, answers=ANSWERS) == poll[0]
    assert match_one("oui", YES_NO, answers=ANSWERS) == YES_NO[0]
    assert match_one("oui merci", YES_NO, answers=ANSWERS) is None


# --- ages ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "bracket"), [
    ("16", "15-17"), ("j'ai 16 ans", "15-17"), ("16 ans", "15-17"), ("18-25", "18-25"),
    ("18 25", "18-25"), ("18 - 25 ans", "18-25"), ("25", "18-25"), ("I'm 40", "35-49"),
    ("72", "65+"), ("de 50 a 64 ans", "50-64"), ("3", "18-25"),  # 3 is the number shown for 18-25
])
def test_an_age_or_a_bracket_at_the_age_question(typed: str, bracket: str) -> None:
    decision = say(typed, State("onboarding.age"), NEWCOMER)
    assert decision.effects == (SetProfile(age_bracket=bracket),)
    assert step_of(decision) == "onboarding.postcode"


@pytest.mark.parametrize("typed", ["12", "j'ai 14 ans", "moins de 15 ans"])
def test_under_15_by_age_is_the_under_15_bracket(typed: str) -> None:
    decision = say(typed, State("onboarding.age"), NEWCOMER)
    assert decision.effects == (Unregister(),)  # nothing kept; campaigns to read
    assert step_of(decision) == "browse.list"
    assert "accord d'un parent" in text(decision)


@pytest.mark.parametrize("typed", ["18-30", "16 17 18", "31000", "1990", "moins de 18",
                                   "plus de 15", "16 ou 17"])
def test_numbers_that_fit_no_bracket_are_a_miss(typed: str) -> None:
    decision = say(typed, State("onboarding.age"), NEWCOMER)
    assert decision.effects == ()
    assert decision.messages[0].key == "common.reask"


# --- labels without accents, case or a small typo ---------------------------------------------

@pytest.mark.parametrize(("typed", "word", "close"), [
    ("voter", "voter", True), ("votre", "voter", True), ("votr", "voter", True),
    ("voterr", "voter", True), ("vaoter", "voter", True), ("vutir", "voter", False),
    ("aide", "aida", False),  # under 5 letters: exact only
])
def test_one_letter_off_in_words_of_5_letters_or_more(typed: str, word: str, close: bool) -> None:
    assert near(typed, word) is close


def test_labels_are_matched_without_accents_case_or_a_typo() -> None:
    menu = say("REGLAGES", State("main.menu"))
    assert step_of(menu) == "settings.menu"
    typo = say("Proposr une idee", State("main.menu"))
    assert typo.messages[0].key == "propose.none"  # chosen: no campaign takes ideas here
    refused = say("je refuze", State("onboarding.consent"), NEWCOMER)
    assert refused.effects == (Erase(),)


def test_a_typo_that_fits_two_labels_is_a_miss() -> None:
    options = (Option("a", "1", "Route"), Option("b", "2", "Routa"))
    assert match_one("routo", options) is None
    assert match_one("route", options) == options[0]


# --- the brief re-ask ---------------------------------------------------------------------------

def test_a_miss_reasks_briefly_naming_the_numbers_then_offers_help() -> None:
    first = say("blabla", State("onboarding.consent"), NEWCOMER)
    assert text(first) == "Répondez 1 ou 2."
    assert first.options == () and first.footer is None
    assert step_of(first) == "onboarding.consent"
    second = say("hmm", first.state, NEWCOMER)
    assert text(second) == "Répondez 1 ou 2, ou AIDE."
    third = say("quoi", second.state, NEWCOMER)
    assert text(third) == "Répondez 1 ou 2, ou AIDE."
    understood = say("1", third.state, NEWCOMER)
    assert understood.effects == (GiveConsent("https://example.org/p"),)


def test_a_hit_in_between_starts_the_count_again() -> None:
    first = say("zut", State("main.menu"))
    assert text(first) == "Répondez par un numéro de 1 à 6."
    elsewhere = say("5", first.state)  # settings
    back = say("zut", dataclasses.replace(elsewhere.state, step="main.menu"))  # type: ignore[arg-type]
    assert text(back) == "Répondez par un numéro de 1 à 6."


@pytest.mark.parametrize(("locale", "once", "twice"), [
    ("en", "Reply 1, 2 or 3.", "Reply 1, 2 or 3, or HELP."),
    ("oc", "Respondètz 1, 2 o 3.", "Respondètz 1, 2 o 3, o AJUDA."),
])
def test_the_reask_in_english_and_occitan(locale: str, once: str, twice: str) -> None:
    person = dataclasses.replace(MEMBER, locale=locale)
    first = say("???!", State("settings.language"), person)
    assert text(first) == once
    assert text(say("bof", first.state, person)) == twice


def test_a_reask_keeps_the_turn_so_the_numbers_shown_still_hold() -> None:
    shown = say("5", State("main.menu"))
    missed = say("zut", shown.state)
    assert missed.turn == shown.turn
    assert missed.state is not None and missed.state.data["_t"] == shown.turn


def test_a_reask_at_a_multi_choice_step_says_several_numbers_may_be_given() -> None:
    decision = say("xyz", State("vote.choose", {"campaign": "cc"}))
    assert text(decision) == ("Je ne reconnais pas : xyz.\n\n"
                              "Répondez par un ou plusieurs numéros de 1 à 2.")


def test_a_reask_on_a_button_channel_shows_the_buttons_again() -> None:
    first = say("bof", State("onboarding.consent"), NEWCOMER, buttons=True)
    assert text(first) == "Choisissez un bouton ci-dessous."
    assert [o.id for o in first.options] == ["accept", "decline"]
    assert first.turn != 0 and first.state is not None
    second = say("bof", first.state, NEWCOMER, buttons=True)
    assert text(second) == "Choisissez un bouton ci-dessous, ou envoyez AIDE."


def test_free_text_steps_keep_their_own_retry() -> None:
    decision = say("pas de code", State("onboarding.postcode"), NEWCOMER)
    assert step_of(decision) == "onboarding.postcode"
    assert decision.messages[0].key == "onboarding.postcode_invalid"


# --- flows declare what a choice means ----------------------------------------------------------

@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    import shutil

    from bot.resources import resource_dir

    target = tmp_path / "flows"
    shutil.copytree(resource_dir("flows"), target)
    return target


def test_shipped_flows_mark_consent_and_confirmations() -> None:
    flows = load(Path(ENGINE.flows["main.menu"].file).parent)
    means = {(ref, c.id): c.means for ref, s in flows.steps.items() for c in s.choices if c.means}
    assert means == {
        ("onboarding.consent", "accept"): "yes", ("onboarding.consent", "decline"): "no",
        ("privacy.confirm_delete", "erase"): "yes", ("privacy.confirm_delete", "keep"): "no",
        ("propose.confirm", "send"): "yes", ("propose.confirm", "cancel"): "no",
        ("vote.confirm", "confirm"): "yes", ("vote.confirm", "cancel"): "no",
    }
    assert flows.answers["daccord"] == "yes" and flows.answers["dacordi"] == "yes"


@pytest.mark.parametrize(("file", "old", "new", "problem"), [
    ("privacy.yaml", 'means: "yes"', "means: maybe", "means must be yes or no"),
    ("privacy.yaml", 'means: "no"', 'means: "yes"', "two choices mean the same"),
    ("privacy.yaml", 'means: "no"', 'meaning: "no"', "unknown choice field 'meaning'"),
    ("keywords.yaml", "fr: [NON]", "fr: [NON, OUI]", "'OUI' means yes and no"),
    ("keywords.yaml", "fr: [NON]", "fr: [NON, MENU]", "'menu' is a keyword"),
])
def test_wrong_meanings_are_refused(flows_dir: Path, file: str, old: str, new: str,
                                    problem: str) -> None:
    edit(flows_dir / file, old, new)
    with pytest.raises(FlowError) as caught:
        load(flows_dir)
    assert problem in caught.value.problem
