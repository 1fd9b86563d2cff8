"""The engine is pure: plain values in, a decision out; no database, no clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bot.app import load_engine
from bot.channels.base import Inbound
from bot.conversation.effects import CastBallot, GiveConsent, SetLocale, SetProfile, SetStatus
from bot.conversation.engine import Context, EngineSettings, State
from bot.domain.ballots import Proposal
from bot.domain.campaigns import parse_campaign
from bot.domain.catalog import Catalog
from bot.domain.participants import Profile, Status
from bot.i18n import I18n

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
I18N = I18n()
_, ENGINE = load_engine(I18N)
CAMPAIGN = parse_campaign({
    "slug": "cc", "kind": "poll", "title": {"fr": "Sondage"}, "summary": {"fr": "Oui ou non"},
    "phases": {"vote": {"start": "today-1", "end": "today+1"}},
    "ballot": {"method": "single"},
}, file="c.yaml", today=date(2026, 3, 10))
CAMPAIGN = type(CAMPAIGN)(**{**{f: getattr(CAMPAIGN, f) for f in CAMPAIGN.__slots__}, "id": 7})
CATALOG = Catalog(campaigns=(CAMPAIGN,), proposals={
    1: Proposal(1, 7, {"fr": "Oui"}), 2: Proposal(2, 7, {"fr": "Non"})})
SETTINGS = EngineSettings(privacy_url="https://example.org/p", contact="c@example.org")
MEMBER = Profile(id=1, locale="fr", consent_at=NOW, age_bracket="18-25", postal_code="31000",
                 departement="31")


def ctx(profile: Profile = MEMBER, **kwargs: object) -> Context:
    return Context(now=NOW, profile=profile, catalog=CATALOG, settings=SETTINGS, i18n=I18N,
                   **kwargs)  # type: ignore[arg-type]


def say(text: str, state: State | None, profile: Profile = MEMBER, **kwargs: object):  # type: ignore[no-untyped-def]
    return ENGINE.advance(state, Inbound("console", "x", text), ctx(profile, **kwargs))


def test_a_new_conversation_starts_onboarding() -> None:
    decision = say("salut", None, Profile(id=1, locale="fr"))
    assert decision.state is not None and decision.state.step == "onboarding.language"
    assert decision.effects == ()
    assert [o.label for o in decision.options] == ["Français", "English", "Occitan"]


def test_onboarding_effects() -> None:
    newcomer = Profile(id=1, locale="fr")
    decision = say("english", State("onboarding.language"), newcomer)
    assert decision.effects == (SetLocale("en"),)
    assert decision.locale == "en"
    decision = say("1", State("onboarding.consent"), newcomer)
    assert decision.effects == (GiveConsent("https://example.org/p"),)
    decision = say("48 000", State("onboarding.postcode"), newcomer)
    assert decision.effects == (SetProfile(postal_code="48000", departement="48"),)


def test_vote_shortcut_then_confirm_casts_one_ballot() -> None:
    decision = say("vote p2", State("main.menu"))
    assert decision.state is not None
    assert decision.state.step == "vote.confirm"
    assert decision.state.data == {"campaign": "cc", "ballot": [2], "_t": 1}
    decision = say("1", decision.state)
    assert decision.effects == (CastBallot(7, (2,), "18-25", "31", "participant:1"),)


def test_stop_then_silence_then_start() -> None:
    decision = say("Arrêt", State("vote.choose", {"campaign": "cc"}))
    assert decision.effects == (SetStatus(Status.STOPPED),)
    stopped = Profile(**{**{f: getattr(MEMBER, f) for f in MEMBER.__slots__},
                         "status": Status.STOPPED})
    assert say("1", decision.state, stopped).silent
    back = say("start", decision.state, stopped)
    assert back.effects == (SetStatus(Status.ACTIVE),)
    assert back.state is not None and back.state.step == "main.menu"


@pytest.mark.parametrize("hours", [23, 25])
def test_idle_timeout(hours: int) -> None:
    state = State("vote.choose", {"campaign": "cc"}, NOW - timedelta(hours=hours))
    decision = say("1", state)
    assert decision.state is not None
    expected = "main.menu" if hours > 24 else "vote.confirm"
    assert decision.state.step == expected


def test_button_choice_ids_resolve_like_typed_numbers() -> None:
    typed = say("2", State("main.menu"))
    pressed = ENGINE.advance(State("main.menu"), Inbound("telegram", "x", "", choice="propose"),
                             ctx())
    assert typed.state == pressed.state


def test_long_lists_are_paged_and_every_option_stays_accepted() -> None:
    first = say("3", State("main.menu"), page_chars=8)  # → the only open vote
    assert [o.label for o in first.options] == ["Oui"]
    assert first.footer is not None and first.footer.params == {"page": 1, "pages": 2}
    second = say("suite", first.state, page_chars=8)
    assert [o.label for o in second.options] == ["Non"]
    assert second.state is not None and second.state.data["_page"] == 1
    wrapped = say("SUITE", second.state, page_chars=8)
    assert [o.label for o in wrapped.options] == ["Oui"]
    hidden = say("2", first.state, page_chars=8)  # "Non" was not shown yet: still accepted
    assert hidden.state is not None and hidden.state.data["ballot"] == [2]
