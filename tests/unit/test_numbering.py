"""Local numbering: every list reads 1…N as shown, whatever the ids behind it; what each
number meant is kept with the turn, so a number typed under a list that changed since is
handled like a stale button. Codes (P12) and labels keep working. Pure engine, no store."""

from __future__ import annotations

import dataclasses
from datetime import date

from bot.channels.base import Inbound
from bot.conversation.effects import ReportProposal
from bot.conversation.engine import LIST, Context, Decision, State
from bot.conversation.matching import moved
from bot.domain.ballots import Proposal
from bot.domain.campaigns import Campaign, parse_campaign
from bot.domain.catalog import Catalog
from tests.unit.test_engine import ENGINE, I18N, MEMBER, NOW, SETTINGS


def campaign(slug: str, title: str, campaign_id: int) -> Campaign:
    parsed = parse_campaign({
        "slug": slug, "kind": "participatory_budget", "title": {"fr": title},
        "summary": {"fr": "Choisissez."}, "phases": {"vote": {"start": "today-1",
                                                              "end": "today+1"}},
        "ballot": {"method": "up_to", "max_choices": 3},
    }, file=f"{slug}.yaml", today=date(2026, 3, 10))
    return dataclasses.replace(parsed, id=campaign_id)


PARKS = campaign("parks", "Parcs", 7)
BUSES = campaign("buses", "Bus", 8)
# Ids far from 1…N, as in a database shared by many campaigns.
PROPOSALS = {
    41: Proposal(41, 7, {"fr": "Bancs"}),
    43: Proposal(43, 7, {"fr": "Arbres"}),
    47: Proposal(47, 7, {"fr": "Fontaine"}),
    50: Proposal(50, 8, {"fr": "Ligne de nuit"}),
}
ONE_VOTE = Catalog(campaigns=(PARKS,), proposals={
    k: p for k, p in PROPOSALS.items() if p.campaign_id == 7})
TWO_VOTES = Catalog(campaigns=(PARKS, BUSES), proposals=PROPOSALS)


def say(text: str, state: State | None, catalog: Catalog = ONE_VOTE,
        **kwargs: object) -> Decision:
    ctx = Context(now=NOW, profile=MEMBER, catalog=catalog, settings=SETTINGS, i18n=I18N,
                  **kwargs)  # type: ignore[arg-type]
    return ENGINE.advance(state, Inbound("console", "x", text), ctx)


def shown(decision: Decision) -> list[tuple[str, str]]:
    return [(o.key, o.label) for o in decision.options]


def text(decision: Decision) -> str:
    t = I18N["fr"]
    return "\n\n".join(t.render(m) for m in decision.messages)  # type: ignore[arg-type]


def at_list(catalog: Catalog = ONE_VOTE, **kwargs: object) -> Decision:
    """The vote list of the parks campaign, as shown to someone who chose to vote."""
    decision = say("3", State("main.menu"), catalog, **kwargs)
    if decision.state is not None and decision.state.step == "vote.pick_campaign":
        decision = say("Parcs", decision.state, catalog, **kwargs)
    assert decision.state is not None and decision.state.step == "vote.choose"
    return decision


def test_a_list_is_numbered_from_one_whatever_the_ids() -> None:
    listing = at_list()
    assert shown(listing) == [("1", "Bancs"), ("2", "Arbres"), ("3", "Fontaine")]
    assert [o.code for o in listing.options] == ["P41", "P43", "P47"]
    assert listing.state is not None and listing.state.data[LIST] == ["41", "43", "47"]
    confirm = say("2 3", listing.state)
    assert confirm.state is not None and confirm.state.data["ballot"] == [43, 47]
    assert "P43 Arbres\nP47 Fontaine" in text(confirm)


def test_an_id_is_not_a_number_any_more_but_codes_and_labels_are_still_read() -> None:
    listing = at_list()
    missed = say("41", listing.state)  # the proposal's id: not a number on this list
    assert "Je ne reconnais pas : 41." in text(missed)
    by_code = say("P41 et fontaine", listing.state)
    assert by_code.state is not None
    assert by_code.state.step == "vote.choose"  # a label is one whole answer, not a token
    assert say("p47", listing.state).state.data["ballot"] == [47]  # type: ignore[union-attr]
    assert say("Fontaine", listing.state).state.data["ballot"] == [47]  # type: ignore[union-attr]


def test_numbers_continue_across_pages_and_every_number_stays_accepted() -> None:
    first = at_list(page_chars=10)
    assert shown(first) == [("1", "Bancs")]
    second = say("SUITE", first.state, page_chars=10)
    assert shown(second) == [("2", "Arbres")]
    third = say("SUITE", second.state, page_chars=10)
    assert shown(third) == [("3", "Fontaine")]
    assert third.state is not None and third.state.data[LIST] == ["41", "43", "47"]
    picked = say("1 3", third.state, page_chars=10)  # 1 is on another page: still its number
    assert picked.state is not None and picked.state.data["ballot"] == [41, 47]


def test_a_number_under_a_list_that_changed_is_handled_like_a_stale_button() -> None:
    listing = at_list()
    # Meanwhile "Bancs" is hidden and a new proposal published: "2" now reads differently.
    changed = Catalog(campaigns=(PARKS,), proposals={
        43: PROPOSALS[43], 47: PROPOSALS[47], 49: Proposal(49, 7, {"fr": "Kiosque"})})
    late = say("2", listing.state, changed)
    assert text(late).startswith("La liste a changé entre-temps : la voici à jour.")
    assert late.effects == ()
    assert late.state is not None and late.state.step == "vote.choose"
    assert "ballot" not in late.state.data
    assert shown(late) == [("1", "Arbres"), ("2", "Fontaine"), ("3", "Kiosque")]
    assert late.state.data[LIST] == ["43", "47", "49"]
    again = say("2", late.state, changed)  # under the list now shown: understood
    assert again.state is not None and again.state.data["ballot"] == [47]


def test_a_code_or_label_under_a_changed_list_still_names_its_proposal() -> None:
    listing = at_list()
    changed = Catalog(campaigns=(PARKS,), proposals={
        43: PROPOSALS[43], 47: PROPOSALS[47], 49: Proposal(49, 7, {"fr": "Kiosque"})})
    by_code = say("P47", listing.state, changed)
    assert by_code.state is not None and by_code.state.step == "vote.confirm"
    assert by_code.state.data["ballot"] == [47]
    mixed = say("P47 1", listing.state, changed)  # a number in it: the list is shown again
    assert text(mixed).startswith("La liste a changé")


def test_a_campaign_list_is_checked_the_same_way() -> None:
    listing = say("3", State("main.menu"), TWO_VOTES)
    assert listing.state is not None and listing.state.step == "vote.pick_campaign"
    assert shown(listing) == [("1", "Parcs"), ("2", "Bus")]
    late = say("2", listing.state, ONE_VOTE)  # the bus vote is gone
    assert text(late).startswith("La liste a changé")


def test_vote_shortcut_numbers_are_the_campaign_list() -> None:
    only = say("VOTE 1 3", State("main.menu"))  # one vote open: its list
    assert only.state is not None and only.state.step == "vote.confirm"
    assert only.state.data["ballot"] == [41, 47]
    listing = at_list(TWO_VOTES)
    under = say("vote 2", listing.state, TWO_VOTES)  # under the parks list: its numbers
    assert under.state is not None and under.state.data == {
        "campaign": "parks", "ballot": [43], "_t": under.turn}
    # A code says which campaign the numbers are from: P50's list has 1 "Ligne de nuit".
    mixed = say("VOTE P50 1", State("main.menu"), TWO_VOTES)
    assert mixed.state is not None and mixed.state.data["campaign"] == "buses"
    assert "deux fois" in text(mixed)  # 1 is P50 itself


def test_vote_shortcut_numbers_without_a_campaign_ask_which_one() -> None:
    unsure = say("VOTE 1", State("main.menu"), TWO_VOTES)
    assert text(unsure).startswith("Plusieurs votes sont ouverts : choisissez d'abord")
    assert unsure.state is not None and unsure.state.step == "vote.pick_campaign"
    assert unsure.effects == ()


def test_vote_shortcut_number_beyond_the_list_or_after_it_changed() -> None:
    beyond = say("VOTE 9", State("main.menu"))
    assert text(beyond).startswith("Je ne reconnais pas : 9.")
    assert beyond.state is not None and beyond.state.step == "vote.choose"
    listing = at_list()
    changed = Catalog(campaigns=(PARKS,), proposals={43: PROPOSALS[43], 47: PROPOSALS[47]})
    late = say("VOTE 2", listing.state, changed)
    assert text(late).startswith("La liste a changé")
    assert late.state is not None and late.state.step == "vote.choose"
    assert "ballot" not in late.state.data


def test_voter_typed_on_a_campaign_page_keeps_that_campaign() -> None:
    page = State("browse.detail", {"campaign": "buses"})
    voter = say("Voter", page, TWO_VOTES)
    assert voter.state is not None and voter.state.step == "vote.choose"
    assert voter.state.data["campaign"] == "buses"
    assert shown(voter) == [("1", "Ligne de nuit")]
    from_menu = say("VOTER", State("main.menu"), TWO_VOTES)  # no campaign chosen: which one
    assert from_menu.state is not None and from_menu.state.step == "vote.pick_campaign"


def test_signaler_with_a_number_reports_that_line_of_the_list_on_screen() -> None:
    listing = at_list()
    report = say("SIGNALER 2", listing.state)
    assert ReportProposal(43) in report.effects
    nowhere = say("SIGNALER 2", State("main.menu"))  # no list of proposals on screen
    assert nowhere.effects == ()
    assert "SIGNALER suivi de son code" in text(nowhere)


def test_examples_name_numbers_from_the_list_on_screen() -> None:
    listing = at_list()
    assert "(ex. 1 2)" in text(listing)
    small = Catalog(campaigns=(PARKS,), proposals={47: PROPOSALS[47]})
    assert "(ex. 1)" in text(at_list(small))
    assert "VOTE 1 2" in text(say("AIDE", State("main.menu")))


def test_a_proposal_added_at_the_end_leaves_the_numbers_shown_as_they_were() -> None:
    listing = at_list()
    grown = Catalog(campaigns=(PARKS,), proposals={
        **ONE_VOTE.proposals, 49: Proposal(49, 7, {"fr": "Kiosque"})})
    picked = say("3", listing.state, grown)  # still "Fontaine", as shown
    assert picked.state is not None and picked.state.data["ballot"] == [47]
    assert not text(picked).startswith("La liste a changé")


def test_moved_looks_only_at_the_numbers_typed() -> None:
    shown = ["41", "43", "47"]
    assert not moved("1", shown, ["41", "47"])  # 1 still means 41
    assert moved("2", shown, ["41", "47"])  # 2 meant 43, now 47
    assert moved("3", shown, ["41", "47"])  # 3 is gone
    assert not moved("3", shown, ["41", "43", "47", "49"])  # one added at the end
    assert not moved("P43 fontaine 2026", shown, ["47"])  # codes, labels, no number shown
    assert moved("1, 3 et 2", shown, ["41", "43", "49"])


def test_details_of_a_number_under_a_changed_list_show_the_list_again() -> None:
    """"2 ?" and INFO 2 mean what the list showed as 2; withdrawn since, the list again."""
    full = {41: Proposal(41, 7, {"fr": "Bancs en bois sur la place"}, short={"fr": "Bancs"}),
            43: Proposal(43, 7, {"fr": "Arbres le long du canal"}, short={"fr": "Arbres"}),
            47: Proposal(47, 7, {"fr": "Fontaine du square"}, short={"fr": "Fontaine"})}
    listing = at_list(Catalog(campaigns=(PARKS,), proposals=full))
    assert shown(listing) == [("1", "Bancs"), ("2", "Arbres"), ("3", "Fontaine")]
    changed = Catalog(campaigns=(PARKS,), proposals={43: full[43], 47: full[47]})
    for asked in ("2 ?", "INFO 2", "2?"):
        late = say(asked, listing.state, changed)
        assert text(late).startswith("La liste a changé entre-temps : la voici à jour."), asked
        assert "Fontaine du square" not in text(late)  # never what the person did not see
        assert shown(late) == [("1", "Arbres"), ("2", "Fontaine")]
        assert late.state is not None and late.state.data[LIST] == ["43", "47"]
    # Under the list as it stands, and for a number that still means the same: details.
    again = say("2 ?", say("2 ?", listing.state, changed).state, changed)
    assert "Fontaine du square" in text(again)
    still = say("1 ?", State("vote.choose", {**listing.state.data}),  # type: ignore[union-attr]
                Catalog(campaigns=(PARKS,), proposals={41: full[41], 47: full[47]}))
    assert "Bancs en bois sur la place" in text(still)
    assert not text(still).startswith("La liste a changé")


def test_a_budget_example_fits_its_envelope() -> None:
    village = dataclasses.replace(parse_campaign({
        "slug": "village", "kind": "participatory_budget", "title": {"fr": "Village"},
        "summary": {"fr": "Choisissez."}, "envelope": 100_000,
        "phases": {"vote": {"start": "today-1", "end": "today+1"}},
        "ballot": {"method": "budget"},
    }, file="village.yaml", today=date(2026, 3, 10)), id=9)
    costs = {61: 35_000, 62: 28_000, 63: 45_000, 64: 18_000}  # 1 2 3 = 108 000 € > 100 000 €
    catalog = Catalog(campaigns=(village,), proposals={
        i: Proposal(i, 9, {"fr": f"Projet {i}"}, cost=c) for i, c in costs.items()})
    listing = say("3", State("main.menu"), catalog)
    assert listing.state is not None and listing.state.step == "vote.choose"
    assert "(ex. 1 2)" in text(listing)
    followed = say("1 2", listing.state, catalog)  # following the example works
    assert followed.state is not None and followed.state.step == "vote.confirm"
    # Under a minimum, the example goes on past a project that does not fit.
    least = dataclasses.replace(village, ballot=dataclasses.replace(village.ballot,
                                                                    min_share=0.75))
    catalog = dataclasses.replace(catalog, campaigns=(least,))
    listing = say("3", State("main.menu"), catalog)
    assert "(ex. 1 2 4)" in text(listing)  # 81 000 €: at least 75 000 €, at most 100 000 €
    assert say("1 2 4", listing.state, catalog).state.step == "vote.confirm"  # type: ignore[union-attr]
