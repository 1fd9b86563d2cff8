"""The engine's multi-select on buttons, pure: presses toggle, DONE hands the selection on."""

from __future__ import annotations

import dataclasses
from datetime import date

from bot.channels.base import Inbound
from bot.conversation.engine import DONE, PICKED, Context, Decision, State
from bot.domain.ballots import Proposal
from bot.domain.campaigns import Campaign, parse_campaign
from bot.domain.catalog import Catalog
from tests.unit.test_engine import ENGINE, I18N, MEMBER, NOW, SETTINGS


def campaign(ballot: dict[str, object], envelope: int | None = None) -> Campaign:
    raw: dict[str, object] = {
        "slug": "cc", "kind": "participatory_budget", "title": {"fr": "Budget"},
        "summary": {"fr": "Choisissez."}, "phases": {"vote": {"start": "today-1",
                                                               "end": "today+1"}},
        "ballot": ballot}
    if envelope is not None:
        raw["envelope"] = envelope
    parsed = parse_campaign(raw, file="c.yaml", today=date(2026, 3, 10))
    return type(parsed)(**{**{f: getattr(parsed, f) for f in parsed.__slots__}, "id": 7})


def context(chosen: Campaign, *, buttons: bool = True) -> Context:
    catalog = Catalog(campaigns=(chosen,), proposals={
        i: Proposal(i, 7, {"fr": f"Projet {i}"}, cost=10_000 * i) for i in (1, 2, 3, 4)})
    return Context(now=NOW, profile=MEMBER, catalog=catalog, settings=SETTINGS, i18n=I18N,
                   buttons=buttons)


def press(choice: str, state: State, ctx: Context) -> Decision:
    turn = int(state.data.get("_t", 0))
    return ENGINE.advance(state, Inbound("telegram", "1", "", choice=choice, turn=turn), ctx)


def start(ctx: Context) -> State:
    decision = ENGINE.advance(State("main.menu"), Inbound("telegram", "1", "VOTER"), ctx)
    assert decision.state is not None and decision.state.step == "vote.choose"
    return decision.state


def test_presses_toggle_in_place_and_done_drafts_the_ballot() -> None:
    ctx = context(campaign({"method": "up_to", "max_choices": 2}))
    state = start(ctx)
    first = press("1", state, ctx)
    assert first.edit and first.toast is None and first.state is not None
    assert first.turn == state.data["_t"]  # the same message: its buttons still hold
    assert first.state.data[PICKED] == ["1"]
    assert [o.code for o in first.options][:2] == ["✓ P1", "P2"]
    assert [o.label for o in first.options if o.id == DONE] == ["Valider (1/2)"]
    second = press("2", first.state, ctx)
    assert second.state is not None and second.state.data[PICKED] == ["1", "2"]
    # A third: over the limit, a short notice and nothing else.
    third = press("3", second.state, ctx)
    assert third.messages == () and third.toast is not None
    assert third.toast.key == "vote.full"
    assert third.state is not None and third.state.data[PICKED] == ["1", "2"]
    unticked = press("1", second.state, ctx)
    assert unticked.state is not None and unticked.state.data[PICKED] == ["2"]
    done = press(DONE, second.state, ctx)
    assert not done.edit and done.state is not None and done.state.step == "vote.confirm"
    assert done.state.data["ballot"] == [1, 2]


def test_a_budget_refuses_the_press_over_its_envelope() -> None:
    ctx = context(campaign({"method": "budget"}, envelope=50_000))
    state = start(ctx)
    decision = press("3", state, ctx)  # 30 000 €
    assert decision.state is not None
    assert [o.label for o in decision.options if o.id == DONE] == ["Valider (30 000 €)"]
    over = press("4", decision.state, ctx)  # 70 000 €
    assert over.toast is not None and over.toast.key == "vote.over_envelope"
    assert I18N["fr"].render(over.toast) == (
        "Ce projet ferait dépasser l'enveloppe : 70 000 € pour 50 000 €.")


def test_one_choice_and_typed_numbers_do_not_toggle() -> None:
    single = context(campaign({"method": "single"}))
    pressed = press("2", start(single), single)
    assert pressed.state is not None and pressed.state.step == "vote.confirm"
    typed = context(campaign({"method": "up_to", "max_choices": 2}), buttons=False)
    state = start(typed)
    assert all(o.id != DONE and not o.code.startswith("✓") for o in
               ENGINE.advance(State("main.menu"), Inbound("console", "1", "VOTER"),
                              typed).options)
    answered = ENGINE.advance(state, Inbound("console", "1", "1 2"), typed)
    assert answered.state is not None and answered.state.data["ballot"] == [1, 2]


def without(ctx: Context, *gone: int) -> Context:
    """The same context after some proposals were withdrawn (hidden by moderation)."""
    proposals = {i: p for i, p in ctx.catalog.proposals.items() if i not in gone}
    return dataclasses.replace(ctx, catalog=dataclasses.replace(ctx.catalog,
                                                                proposals=proposals))


def said(decision: Decision) -> str:
    t = I18N["fr"]
    return "\n\n".join(t.render(m) for m in decision.messages)  # type: ignore[arg-type]


def test_a_ticked_proposal_withdrawn_meanwhile_is_said_never_dropped_silently() -> None:
    ctx = context(campaign({"method": "up_to", "max_choices": 3}))
    first = press("1", start(ctx), ctx)
    assert first.state is not None
    second = press("2", first.state, ctx)
    assert second.state is not None and second.state.data[PICKED] == ["1", "2"]
    later = without(ctx, 1)  # "Projet 1", ticked, is withdrawn
    for choice in (DONE, "3"):
        answer = press(choice, second.state, later)
        assert said(answer).startswith("La liste a changé entre-temps : la voici à jour.")
        assert not answer.edit  # a new message: the notice must be seen
        assert answer.state is not None and answer.state.step == "vote.choose"
        assert answer.state.data[PICKED] == ["2"]  # the others stay ticked, the press waits
        assert "ballot" not in answer.state.data and answer.effects == ()
        assert [o.code for o in answer.options if o.code.startswith("✓")] == ["✓ P2"]
        assert "Valider (1/3)" in [o.label for o in answer.options]
        assert answer.turn != second.turn  # the old message's buttons are stale now
    # A press on a proposal withdrawn, not ticked: said the same way.
    pressed = press("4", second.state, without(ctx, 4))
    assert said(pressed).startswith("La liste a changé")
    assert pressed.state is not None and pressed.state.data[PICKED] == ["1", "2"]


def test_typed_numbers_after_ticks_are_the_whole_answer_and_the_reply_says_so() -> None:
    ctx = context(campaign({"method": "up_to", "max_choices": 3}))
    first = press("1", start(ctx), ctx)
    assert first.state is not None
    second = press("2", first.state, ctx)
    assert second.state is not None
    typed = ENGINE.advance(second.state, Inbound("telegram", "1", "3"), ctx)
    assert said(typed).startswith(
        "Vos numéros remplacent la sélection faite avec les boutons.\n\nVotre vote :\nP3 ")
    assert typed.state is not None and typed.state.data["ballot"] == [3]
    assert PICKED not in typed.state.data
    same = ENGINE.advance(second.state, Inbound("telegram", "1", "2 1"), ctx)
    assert said(same).startswith("Votre vote :")  # what was ticked: nothing to say
    assert same.state is not None and same.state.data["ballot"] == [2, 1]


def test_a_list_drawn_after_a_withdrawal_is_not_said_to_have_changed() -> None:
    """Ticks, Valider, then a ticked proposal is withdrawn and the person comes back with
    Changer: the list drawn then is up to date, so the next press just ticks."""
    ctx = context(campaign({"method": "up_to", "max_choices": 3}))
    first = press("1", start(ctx), ctx)
    assert first.state is not None
    second = press("2", first.state, ctx)
    assert second.state is not None
    confirm = press(DONE, second.state, ctx)
    assert confirm.state is not None and confirm.state.step == "vote.confirm"
    later = without(ctx, 1)
    back = press("change", confirm.state, later)
    assert back.state is not None and back.state.step == "vote.choose"
    assert back.state.data[PICKED] == ["2"]
    assert [o.code for o in back.options if o.code.startswith("✓")] == ["✓ P2"]
    ticked = press("3", back.state, later)
    assert ticked.edit and not said(ticked).startswith("La liste a changé")
    assert ticked.state is not None and ticked.state.data[PICKED] == ["2", "3"]
