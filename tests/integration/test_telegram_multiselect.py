"""Multi-select on Telegram: each press ticks or unticks a project in the same message,
edited in place; over the limit or the envelope, a short notice and no new message; SMS and
console keep typed numbers."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import App
from bot.staff import moderation
from bot.store.tables import ballots
from bot.testing.fake_telegram import Call
from tests.conftest import FixedClock, Person, RecordingSender, code_of
from tests.integration import test_telegram
from tests.integration.test_telegram import ANNE, Telegram, onboard

tg = test_telegram.tg  # the fixture: Votz on the fake Bot API, polling and webhook


def labels(message: Call) -> list[str]:
    return [label for label, _ in message.buttons]


def button(message: Call, code: str) -> str:
    """The label of the button for proposal `code` (P12), ticked or not."""
    found = [label for label in labels(message)
             if code in label.replace("✓", " ").split()[:1]]
    assert len(found) == 1, (code, labels(message))
    return found[0]


async def tap(tg: Telegram, message: Call, label: str) -> Call | None:
    """Press a button of `message` as it stands now; the new message sent, if any."""
    current = tg.fake.now(message)
    data = current.data_of(label)
    assert data is not None, (label, labels(current))
    before = len(tg.fake.sent(ANNE))
    tg.fake.presses(ANNE, data, message.result["message_id"])
    await tg.deliver()  # the press's acknowledgement has been sent
    sent = tg.fake.sent(ANNE)[before:]
    assert len(sent) <= 1, [c.text for c in sent]
    return sent[0] if sent else None


async def tap_code(tg: Telegram, message: Call, code: str) -> Call | None:
    return await tap(tg, message, button(tg.fake.now(message), code))


async def choose_screen(tg: Telegram, campaign: str) -> Call:
    menu = await onboard(tg)
    listing = await tg.presses(menu, "Voter")
    assert listing is not None
    choose = await tg.presses(listing, campaign)
    assert choose is not None
    return choose


async def test_presses_tick_projects_in_place_and_valider_confirms(tg: Telegram) -> None:
    choose = await choose_screen(tg, "Budget des lycées")
    assert "Touchez jusqu'à 3 projets pour les cocher, puis Valider." in choose.text
    assert not any("Valider" in label for label in labels(choose))  # nothing ticked yet
    app = tg.app
    garden, bikes, mural, library = (code_of(app, t) for t in (
        "Jardin partagé", "Vélos en prêt", "Fresque murale", "Bibliothèque de rue"))

    assert await tap_code(tg, choose, garden) is None  # no new message: the same one, edited
    now = tg.fake.now(choose)
    assert button(now, garden).startswith(f"✓ {garden} ")
    assert not button(now, bikes).startswith("✓")
    assert "Valider (1/3)" in labels(now)
    assert f"Votre sélection : {garden} (1/3)." in now.text
    assert len(tg.fake.edits(ANNE, choose.result["message_id"])) == 1

    assert await tap_code(tg, choose, bikes) is None
    assert await tap_code(tg, choose, mural) is None
    now = tg.fake.now(choose)
    assert f"Votre sélection : {garden}, {bikes}, {mural} (3/3)." in now.text
    assert "Valider (3/3)" in labels(now)

    # A fourth: refused with a short notice, no new message, the message unchanged.
    edits = len(tg.fake.edits(ANNE, choose.result["message_id"]))
    assert await tap_code(tg, choose, library) is None
    assert tg.fake.answers(ANNE)[-1] == (
        "Vous avez déjà 3 projets : décochez-en un pour en choisir un autre.")
    assert len(tg.fake.edits(ANNE, choose.result["message_id"])) == edits
    assert tg.fake.now(choose).text == now.text and labels(tg.fake.now(choose)) == labels(now)

    # Untick one; the buttons stayed on the message all along.
    assert await tap_code(tg, choose, bikes) is None
    now = tg.fake.now(choose)
    assert not button(now, bikes).startswith("✓")
    assert f"Votre sélection : {garden}, {mural} (2/3)." in now.text

    confirm = await tap(tg, choose, "Valider (2/3)")
    assert confirm is not None
    assert confirm.text.startswith(f"Votre vote :\n{garden} ")
    assert f"\n{mural} " in confirm.text
    assert tg.fake.now(choose).buttons == []  # answered: its keyboard is gone
    receipt = await tap(tg, confirm, "Valider")
    assert receipt is not None and receipt.text.startswith(f"A voté : {garden}")
    rows = await app.db.run(lambda c: c.execute(select(ballots.c.choices)).all())
    assert [r.choices for r in rows] == [f"{garden[1:]},{mural[1:]}"]


async def test_quick_presses_on_the_message_before_its_edit_all_count(tg: Telegram) -> None:
    """Two taps before the first edit arrives: both come from the same message (its
    buttons carry the same turn) and both count, none is taken for a stale button."""
    choose = await choose_screen(tg, "Budget des lycées")
    garden, bikes = code_of(tg.app, "Jardin partagé"), code_of(tg.app, "Vélos en prêt")
    for code in (garden, bikes):
        data = choose.data_of(button(choose, code))  # the original buttons, as first sent
        assert data is not None
        tg.fake.presses(ANNE, data, choose.result["message_id"])
    await tg.deliver()
    now = tg.fake.now(choose)
    assert f"Votre sélection : {garden}, {bikes} (2/3)." in now.text
    assert not any("message précédent" in c.text for c in tg.fake.sent(ANNE))


async def test_a_budget_ballot_shows_its_total_and_refuses_over_the_envelope(
        tg: Telegram) -> None:
    choose = await choose_screen(tg, "Budget du village")
    assert choose.text.startswith("Budget du village\nTouchez les projets pour composer votre "
                                  "sélection dans l'enveloppe de 60 000 €, puis Valider.")
    bench, playground, lights = (code_of(tg.app, t) for t in (
        "Bancs publics", "Aire de jeux", "Éclairage solaire"))
    assert await tap_code(tg, choose, playground) is None
    now = tg.fake.now(choose)
    assert f"Votre sélection : {playground}, soit 35 000 € sur 60 000 €." in now.text
    assert "Valider (35 000 €)" in labels(now)
    assert await tap_code(tg, choose, lights) is None  # 65 000 €: over
    assert tg.fake.answers(ANNE)[-1] == (
        "Ce projet ferait dépasser l'enveloppe : 65 000 € pour 60 000 €.")
    assert not button(tg.fake.now(choose), lights).startswith("✓")
    assert await tap_code(tg, choose, bench) is None
    now = tg.fake.now(choose)
    assert "soit 45 000 € sur 60 000 €." in now.text
    confirm = await tap(tg, choose, "Valider (45 000 €)")
    assert confirm is not None and confirm.text.startswith(f"Votre vote :\n{playground} ")
    receipt = await tap(tg, confirm, "Valider")
    assert receipt is not None and "A voté" in receipt.text
    rows = await tg.app.db.run(lambda c: c.execute(select(ballots.c.choices)).all())
    assert [r.choices for r in rows] == [f"{playground[1:]},{bench[1:]}"]


async def test_the_console_keeps_typed_numbers(app: App, sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    listing = await me.say("VOTER")
    assert "Budget des lycées" in listing
    number = next(line.split()[0] for line in listing.splitlines()
                  if "Budget des lycées" in line)
    choose = await me.say(number)
    assert "✓" not in choose and "Valider" not in choose and "Touchez" not in choose
    confirm = await me.say("1 2")
    assert confirm.startswith("Votre vote :\nP")


async def test_changer_comes_back_with_the_ticks_and_the_minimum_keeps_them(
        tg: Telegram) -> None:
    choose = await choose_screen(tg, "Budget du village")
    bench, playground = code_of(tg.app, "Bancs publics"), code_of(tg.app, "Aire de jeux")
    assert await tap_code(tg, choose, bench) is None
    # 10 000 €: under the budget's minimum (half the envelope): said, the ticks kept.
    again = await tap(tg, choose, "Valider (10 000 €)")
    assert again is not None
    assert "10 000 € : il faut atteindre au moins 30 000 €." in again.text.split("\n")[0]
    assert button(again, bench).startswith(f"✓ {bench} ")
    assert await tap_code(tg, again, playground) is None
    confirm = await tap(tg, again, "Valider (45 000 €)")
    assert confirm is not None and confirm.text.startswith("Votre vote :\n")
    back = await tap(tg, confirm, "Changer")
    assert back is not None
    assert button(back, bench).startswith("✓") and button(back, playground).startswith("✓")
    assert "Valider (45 000 €)" in labels(back)


async def test_a_message_telegram_cannot_edit_is_sent_anew(tg: Telegram) -> None:
    choose = await choose_screen(tg, "Budget des lycées")
    garden = code_of(tg.app, "Jardin partagé")
    tg.fake.fail_next("editMessageText", 400, "Bad Request: message to edit not found")
    anew = await tap_code(tg, choose, garden)
    assert anew is not None  # the edit was refused: the same screen, as a new message
    assert button(anew, garden).startswith(f"✓ {garden} ")
    assert "Valider (1/3)" in labels(anew)
    assert any(c.method == "editMessageText!failed" for c in tg.fake.calls)


async def test_valider_pressed_before_the_ticks_edits_are_sent(tg: Telegram) -> None:
    """Ticks and Valider pressed before any edit has left the outbox: the list ends with
    its last selection and no buttons, the confirmation is sent once, in this order."""
    choose = await choose_screen(tg, "Budget des lycées")
    garden, bikes = code_of(tg.app, "Jardin partagé"), code_of(tg.app, "Vélos en prêt")
    mid = choose.result["message_id"]
    for code in (garden, bikes):
        data = choose.data_of(button(choose, code))
        assert data is not None
        tg.fake.presses(ANNE, data, mid)
    # Valider as it is shown after the ticks: the same turn as the list's buttons.
    turn = (choose.data_of(button(choose, garden)) or "").split(":")[0]
    tg.fake.presses(ANNE, f"{turn}:_done", mid)
    before = len(tg.fake.calls)
    await tg.deliver()
    await tg.receiver.stop()
    now = tg.fake.now(choose)
    assert labels(now) == []  # answered: no buttons came back with a late edit
    assert f"Votre sélection : {garden}, {bikes} (2/3)." in now.text  # the last ticks shown
    sent = [c for c in tg.fake.sent(ANNE) if c.text.startswith("Votre vote :")]
    assert len(sent) == 1 and f"{garden} " in sent[0].text and f"{bikes} " in sent[0].text
    to_list = [c.method for c in tg.fake.calls[before:]
               if c.method.startswith("edit") or c.method == "sendMessage"]
    assert to_list == ["editMessageText", "editMessageText", "editMessageReplyMarkup",
                       "sendMessage"], to_list


async def test_a_ticked_project_withdrawn_meanwhile_is_said_at_valider(
        tg: Telegram, clock: FixedClock) -> None:
    choose = await choose_screen(tg, "Budget des lycées")
    garden, bikes = code_of(tg.app, "Jardin partagé"), code_of(tg.app, "Vélos en prêt")
    assert await tap_code(tg, choose, garden) is None
    assert await tap_code(tg, choose, bikes) is None
    await moderation.hide(tg.app.db, [garden], reason="duplicate", by="alice", now=clock())
    await tg.app.refresh_catalog()
    again = await tap(tg, choose, "Valider (2/3)")
    assert again is not None  # not the confirmation: the list, up to date, said so
    assert again.text.startswith("La liste a changé entre-temps : la voici à jour.")
    assert f"Votre sélection : {bikes} (1/3)." in again.text
    assert not any(garden in label for label in labels(again))
    assert button(again, bikes).startswith("✓") and "Valider (1/3)" in labels(again)
    assert labels(tg.fake.now(choose)) == []  # the old list is answered
    assert await tg.app.db.run(lambda c: c.execute(select(ballots.c.choices)).all()) == []
    confirm = await tap(tg, again, "Valider (1/3)")
    assert confirm is not None and confirm.text.startswith(f"Votre vote :\n{bikes} ")


async def test_numbers_typed_after_ticks_are_the_answer_and_the_reply_says_so(
        tg: Telegram) -> None:
    choose = await choose_screen(tg, "Budget des lycées")
    garden, grocery = code_of(tg.app, "Jardin partagé"), code_of(tg.app, "Épicerie solidaire")
    assert await tap_code(tg, choose, garden) is None
    typed = await tg.says("2")  # the list's second project, typed
    assert typed.text.startswith("Vos numéros remplacent la sélection faite avec les boutons."
                                 f"\n\nVotre vote :\n{grocery} ")
    receipt = await tg.presses(typed, "Valider")
    assert receipt is not None
    rows = await tg.app.db.run(lambda c: c.execute(select(ballots.c.choices)).all())
    assert [r.choices for r in rows] == [grocery[1:]]


async def test_buttons_already_gone_do_not_hold_up_the_answer(tg: Telegram) -> None:
    """The pressed message's buttons are taken away before the answer is sent: where
    Telegram says there is nothing to change (taken away already), the answer still goes,
    once."""
    choose = await choose_screen(tg, "Budget des lycées")
    garden = code_of(tg.app, "Jardin partagé")
    assert await tap_code(tg, choose, garden) is None
    tg.fake.fail_next("editMessageReplyMarkup", 400, "Bad Request: message is not modified")
    confirm = await tap(tg, choose, "Valider (1/3)")
    assert confirm is not None and confirm.text.startswith(f"Votre vote :\n{garden} ")
    assert any(c.method == "editMessageReplyMarkup!failed" for c in tg.fake.calls)
    assert [c.text for c in tg.fake.sent(ANNE)].count(confirm.text) == 1
