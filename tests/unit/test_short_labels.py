"""Short titles: parsed and checked (at most 32 characters), kept through storage, shown in
lists and buttons; the full title, cost and description one step away (INFO 3, "3 ?",
INFO on a campaign page, Telegram's Details button)."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.campaign_files import check_campaigns
from bot.channels.base import Inbound
from bot.conversation.engine import DETAILS, Context, Decision, State, render
from bot.domain.ballots import Proposal
from bot.domain.campaigns import SHORT_MAX, cut, missing_shorts, parse_campaign
from bot.domain.catalog import Catalog
from bot.errors import CampaignError
from bot.store.repo import campaign_from_json, campaign_to_json
from tests.unit.test_engine import ENGINE, I18N, MEMBER, NOW, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 3, 10)
LONG = "Épicerie solidaire à Toulouse : produits du quotidien à petits prix sur le campus"


def definition(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "slug": "vie", "kind": "participatory_budget",
        "title": {"fr": "Vos solutions pour la vie étudiante", "en": "Student life: solutions"},
        "short": {"fr": "Vie étudiante"},
        "summary": {"fr": "500 000 € pour des projets étudiants."},
        "description": {"fr": "Seules les associations étudiantes peuvent déposer un projet."},
        "phases": {"vote": {"start": "today-1", "end": "today+10"}},
        "ballot": {"method": "up_to", "max_choices": 3},
        "seed_proposals": [
            {"ref": "epicerie", "title": {"fr": LONG}, "short": {"fr": "Épicerie à Toulouse"},
             "cost": 85000},
            {"ref": "velos", "title": {"fr": "Vélos en prêt à Perpignan : 100 vélos remis en "
                                             "état, prêtés à l'année"}, "cost": 60000},
            {"ref": "jardin", "title": {"fr": "Jardin partagé"}, "cost": 20000},
        ],
    }
    raw.update(changes)
    return raw


def test_short_titles_are_parsed_for_the_campaign_and_its_proposals() -> None:
    campaign = parse_campaign(definition(), file="v.yaml", today=TODAY)
    assert campaign.short == {"fr": "Vie étudiante"}
    assert campaign.seed_proposals[0].short == {"fr": "Épicerie à Toulouse"}
    assert campaign.seed_shorts == {"epicerie": {"fr": "Épicerie à Toulouse"}}
    assert campaign.label("fr") == "Vie étudiante"
    # English has a title but no short one: its own title, cut, never the French short one.
    assert campaign.label("en") == "Student life: solutions"
    assert campaign.label("oc") == "Vie étudiante"  # no Occitan at all: French


def test_a_short_title_over_32_characters_is_refused_where_it_is() -> None:
    with pytest.raises(CampaignError) as caught:
        parse_campaign(definition(short={"fr": "x" * (SHORT_MAX + 1)}), file="v.yaml",
                       today=TODAY)
    assert caught.value.where == "short.fr"
    seeds = definition()["seed_proposals"]
    seeds[1]["short"] = {"fr": "Vélos en prêt à Perpignan, remis en état"}
    with pytest.raises(CampaignError) as caught:
        parse_campaign(definition(seed_proposals=seeds), file="v.yaml", today=TODAY)
    assert caught.value.where == "seed_proposals[1].short.fr"
    assert "40 characters" in caught.value.problem


def test_check_names_long_titles_without_a_short_one() -> None:
    campaign = parse_campaign(definition(), file="v.yaml", today=TODAY)
    found = missing_shorts(campaign)
    assert [field for field, _ in found] == ["seed_proposals[1].title.fr"]
    assert "Vélos en prêt à Perpignan..." in found[0][1]


def test_shipped_campaigns_have_good_short_titles_in_every_language() -> None:
    checked = check_campaigns(ROOT / "campaigns", today=TODAY)
    assert all(not c.problems for c in checked), [p for c in checked for p in c.problems]
    for campaign in (c.campaign for c in checked):
        assert campaign is not None
        assert missing_shorts(campaign) == [], campaign.slug
        shorts = [campaign.short, *(s.short for s in campaign.seed_proposals)]
        for short in shorts:
            assert set(short) == {"fr", "en", "oc"}, campaign.slug
            assert all(0 < len(text) <= SHORT_MAX for text in short.values())


def test_cut_keeps_whole_words_within_the_limit() -> None:
    assert cut("Jardin partagé") == "Jardin partagé"
    assert cut(LONG) == "Épicerie solidaire à Toulouse..."
    assert len(cut(LONG)) <= SHORT_MAX
    assert cut("x" * 40) == "x" * 29 + "..."


def test_short_titles_survive_storage() -> None:
    campaign = dataclasses.replace(parse_campaign(definition(), file="v.yaml", today=TODAY),
                                   id=3)
    stored = campaign_from_json(campaign_to_json(campaign), 3)
    assert stored.short == campaign.short
    assert stored.seed_shorts == campaign.seed_shorts
    old = campaign_to_json(campaign).replace('"short"', '"x_short"')  # stored before: none
    assert campaign_from_json(old, 3).short == {}


# --- in the conversation ---------------------------------------------------------------------

CAMPAIGN = dataclasses.replace(parse_campaign(definition(), file="v.yaml", today=TODAY), id=7)
CATALOG = Catalog(campaigns=(CAMPAIGN,), proposals={
    pid: Proposal(pid, 7, seed.title, seed.cost, ref=seed.ref, short=seed.short)
    for pid, seed in zip((10, 11, 12), CAMPAIGN.seed_proposals, strict=True)})


def advance(text: str, state: State, *, choice: str | None = None,
            **kwargs: Any) -> tuple[Decision, str]:
    ctx = Context(now=NOW, profile=MEMBER, catalog=CATALOG, settings=SETTINGS, i18n=I18N,
                  **kwargs)
    turn = state.data.get("_t")
    decision = ENGINE.advance(state, Inbound("console", "x", text, choice=choice,
                                             turn=turn if choice else None), ctx)
    return decision, render(decision, I18N, {})


def choose_screen(**kwargs: Any) -> Decision:
    decision, _ = advance("3", State("main.menu"), **kwargs)  # Voter: the only open vote
    assert decision.state is not None and decision.state.step == "vote.choose"
    return decision


def test_lists_show_short_titles_and_the_full_ones_stay_behind() -> None:
    decision = choose_screen()
    assert [o.label for o in decision.options] == [
        "Épicerie à Toulouse", "Vélos en prêt à Perpignan...", "Jardin partagé"]
    assert decision.options[0].detail == f"{LONG} (85 000 €)"
    assert decision.options[2].detail == "Jardin partagé (20 000 €)"


@pytest.mark.parametrize("asked", ["1 ?", "1?", "INFO 1", "info p10", "Détails 1"])
def test_info_n_gives_the_full_title_and_cost_and_the_numbers_still_hold(asked: str) -> None:
    screen = choose_screen(page_segments=2)
    assert screen.state is not None
    details, text = advance(asked, screen.state, page_segments=2)
    assert text == f"1 {LONG} (85 000 €)"
    assert details.options == ()  # the list is still on screen, not sent again
    assert details.state is not None and details.state.step == "vote.choose"
    picked, _ = advance("1 3", details.state, page_segments=2)
    assert picked.state is not None and picked.state.data["ballot"] == [10, 12]


def test_the_ballot_to_confirm_lists_short_titles() -> None:
    screen = choose_screen()
    assert screen.state is not None
    _, text = advance("1 2", screen.state)
    assert "P10 Épicerie à Toulouse\nP11 Vélos en prêt à Perpignan..." in text


def test_the_campaign_page_keeps_its_description_behind_info() -> None:
    page, text = advance("1", State("browse.list"), page_segments=2)
    assert page.state is not None and page.state.step == "browse.detail"
    assert "Seules les associations" not in text
    assert "500 000 € pour des projets étudiants." in text
    footer = I18N["fr"].render(page.footer) if page.footer else ""
    assert "INFO : en savoir plus" in footer
    _, text = advance("INFO", page.state, page_segments=2)
    assert text == ("Vos solutions pour la vie étudiante\n"
                    "Seules les associations étudiantes peuvent déposer un projet.")
    _, text = advance("AIDE", page.state, page_segments=2)
    assert "Seules les associations" not in text  # AIDE is still the help
    # An action has nothing more to say than its label: INFO 1 there is the page's INFO.
    for asked in ("INFO 1", "1 ?"):
        _, text = advance(asked, page.state, page_segments=2)
        assert text.endswith("Seules les associations étudiantes peuvent déposer un projet.")


def test_info_alone_where_there_is_nothing_more_is_the_help() -> None:
    screen = choose_screen()
    assert screen.state is not None
    helped, _ = advance("AIDE", screen.state)
    info, _ = advance("INFO", screen.state)
    assert info.messages == helped.messages


def test_telegram_details_button_shows_the_page_full_titles() -> None:
    screen = choose_screen(buttons=True)
    assert screen.state is not None
    assert screen.options[-1].id == DETAILS
    assert screen.options[-1].label == "Détails"
    details, text = advance("", screen.state, choice=DETAILS, buttons=True)
    assert text.splitlines() == ["• " + o.detail for o in screen.options[:-1]]
    assert [o.id for o in details.options] == [o.id for o in screen.options]  # buttons again
    assert details.turn == screen.turn  # the first message's buttons still hold
    assert details.state is not None
    picked, _ = advance("", details.state, choice="12", buttons=True)
    assert picked.messages and all(getattr(m, "key", "") != "common.stale"
                                   for m in picked.messages)


def test_no_details_button_where_labels_are_whole() -> None:
    menu, _ = advance("MENU", State("main.menu"), buttons=True)
    assert all(o.id != DETAILS for o in menu.options)
