"""Telegram through the real python-telegram-bot client against a local fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.telegram import TelegramReceiver, TelegramRunning
from bot.config import Settings
from bot.server import Server
from bot.store.tables import ballots, outbox, participants, proposals
from bot.testing.fake_telegram import TOKEN, Call, FakeTelegram
from tests.conftest import CAMPAIGNS, FixedClock, code_of

PUBLIC = "https://votz.example.org"
ANNE = 1001


@dataclass
class Telegram:
    app: App
    receiver: TelegramReceiver
    fake: FakeTelegram
    client: httpx.AsyncClient
    webhook: bool

    async def deliver(self) -> None:
        if self.webhook:
            pending, self.fake._updates = self.fake._updates, []
            for update in pending:
                response = await self.client.post(
                    "/telegram/webhook", json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": self.fake.webhook["secret"]})
                assert response.status_code == 200
        else:
            await self.receiver.poll_once()
        await self.receiver.settle()  # button presses answered, in tasks of their own
        await self.app.dispatcher.drain()

    async def says(self, text: str, *, user: int = ANNE, language: str | None = "fr") -> Call:
        before = len(self.fake.sent(user))
        self.fake.says(user, text, language=language)
        await self.deliver()
        sent = self.fake.sent(user)[before:]
        assert len(sent) == 1, [c.text for c in sent]
        return sent[0]

    async def presses(self, message: Call, label: str, *, user: int = ANNE) -> Call | None:
        data = message.data_of(label)
        assert data is not None, (label, message.buttons)
        before = len(self.fake.sent(user))
        self.fake.presses(user, data, message.result["message_id"])
        await self.deliver()
        sent = self.fake.sent(user)[before:]
        assert len(sent) <= 1
        return sent[0] if sent else None


@pytest.fixture(params=["polling", "webhook"])
async def tg(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock,
             fake_telegram: tuple[FakeTelegram, str]) -> AsyncIterator[Telegram]:
    fake, url = fake_telegram
    settings = replace(
        Settings.from_env({}, dotenv=None), database_url=f"sqlite:///{tmp_path / 'tg.db'}",
        telegram_token=TOKEN, telegram_api_url=url, telegram_mode=request.param,
        public_url=PUBLIC, contact="participation@example.org",
        # The tests send faster than Telegram's 30/s and 1/s per chat would allow.
        telegram_messages_per_second=10_000, telegram_chat_interval=0)
    async with Server.open(settings, clock=clock) as server:
        await server.app.load_campaigns(CAMPAIGNS)
        running = server.channels["telegram"]
        assert isinstance(running, TelegramRunning)
        receiver = running.receiver
        await receiver.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                         base_url=PUBLIC) as client:
                yield Telegram(server.app, receiver, fake, client, request.param == "webhook")
        finally:
            await receiver.stop()


async def onboard(tg: Telegram, *, user: int = ANNE) -> Call:
    welcome = await tg.says("/start", user=user)
    consent = await tg.presses(welcome, "Français", user=user)
    assert consent is not None
    age = await tg.presses(consent, "J'accepte", user=user)
    assert age is not None
    postcode = await tg.presses(age, "18-25 ans", user=user)
    assert postcode is not None and postcode.text.startswith("Votre code postal")
    return await tg.says("31000", user=user)


async def test_buttons_all_the_way(tg: Telegram) -> None:
    welcome = await tg.says("/start")
    assert welcome.text.startswith("Bonjour ! Avec Votz")
    assert [label for label, _ in welcome.buttons] == ["Français", "English", "Occitan"]
    assert tg.fake.webhook.get("url") == (PUBLIC + "/telegram/webhook" if tg.webhook else None)
    menu = await onboard(tg)
    assert menu.text.startswith("Merci, c'est tout bon !")
    listing = await tg.presses(menu, "Campagnes")
    assert listing is not None
    detail = await tg.presses(listing, "Budget des lycées")
    assert detail is not None and "Étape : vote" in detail.text
    choose = await tg.presses(detail, "Voter")
    assert choose is not None
    garden = code_of(tg.app, "Jardin partagé")
    # Short titles on buttons; costs only where the ballot is a budget (Détails has them).
    assert f"{garden} Jardin partagé" in [label for label, _ in choose.buttons]
    # Up to 3 projects: a press ticks one in the same message, Valider ends the choice.
    ticked = await tg.presses(choose, f"{garden} Jardin partagé")
    assert ticked is None
    confirm = await tg.presses(tg.fake.now(choose), "Valider (1/3)")
    assert confirm is not None and confirm.text.startswith(f"Votre vote :\n{garden}")
    receipt = await tg.presses(confirm, "Valider")
    assert receipt is not None and receipt.text.startswith(f"A voté : {garden}")
    # Change it by typing several numbers where buttons were offered.
    await tg.presses(receipt, "Voter")
    bikes = code_of(tg.app, "Vélos en prêt")
    assert (await tg.says("VOTE " + bikes)).text.startswith(f"Votre vote :\n{bikes}")
    again = tg.fake.sent(ANNE)[-1]
    changed = await tg.presses(again, "Valider")
    assert changed is not None and changed.text.startswith(f"Vote modifié : {bikes}")
    rows = await tg.app.db.run(lambda c: c.execute(select(ballots.c.choices)).all())
    assert [r.choices for r in rows] == [bikes[1:]]
    edits = [c for c in tg.fake.calls if c.method == "editMessageReplyMarkup"]
    assert edits, "answered questions lose their keyboard"
    assert all(c.method != "answerCallbackQuery!failed" for c in tg.fake.calls)


async def test_a_stale_button_gets_a_polite_answer_never_a_second_action(tg: Telegram) -> None:
    await onboard(tg)
    garden = code_of(tg.app, "Jardin partagé")
    confirm = await tg.says(f"VOTE {garden}")
    receipt = await tg.presses(confirm, "Valider")
    assert receipt is not None and "A voté" in receipt.text
    # The same button again (a double tap): a short notice only, no second screen.
    assert await tg.presses(confirm, "Valider") is None
    assert tg.fake.answers(ANNE)[-1] == (
        "Ce bouton n'est plus actif : touchez les boutons du dernier message, ou écrivez MENU.")
    ballot_rows = await tg.app.db.run(lambda c: c.execute(select(ballots)).all())
    assert len(ballot_rows) == 1
    # The buttons of the last message still work.
    assert receipt.buttons
    menu = await tg.presses(receipt, receipt.buttons[0][0])
    assert menu is not None and not menu.text.startswith("Ce bouton")


async def test_text_where_a_button_was_expected(tg: Telegram) -> None:
    welcome = await tg.says("/start")
    assert welcome.buttons
    assert (await tg.says("english")).text.startswith("To take part")
    again = await tg.says("n'importe quoi 🙂")  # a short line, and the buttons once more
    assert again.text == "Tap a button below."
    assert [label for label, _ in again.buttons] == ["I agree", "I decline"]


async def test_language_follows_telegram_and_deep_links_open_the_campaign(tg: Telegram) -> None:
    welcome = await tg.says("/start pick", language="en")
    assert welcome.text.startswith("Hello! With Votz")
    consent = await tg.presses(welcome, "English")
    age = await tg.presses(consent, "I agree")  # type: ignore[arg-type]
    postcode = await tg.presses(age, "18-25")  # type: ignore[arg-type]
    assert postcode is not None
    detail = await tg.says("34000")
    assert detail.text.startswith("Thanks, you're all set!\n\nHigh-school budget")
    other = await tg.says("/start", user=2002, language="de")
    assert other.text.startswith("Bonjour")  # not fr, en or oc: French


async def test_blocking_the_bot_and_coming_back(tg: Telegram) -> None:
    await onboard(tg)
    tg.fake.blocks(ANNE)
    await tg.deliver()
    status = await tg.app.db.run(lambda c: c.execute(select(participants.c.status)).scalar())
    assert status == "stopped"
    back = await tg.says("/start")
    assert back.text.startswith("Bon retour !")


async def test_429_waits_and_403_marks_unreachable(tg: Telegram, clock: FixedClock) -> None:
    await onboard(tg)
    tg.fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7",
                      {"retry_after": 7})
    tg.fake.says(ANNE, "MENU")
    await tg.deliver()
    row = await tg.app.db.run(lambda c: c.execute(
        select(outbox).order_by(outbox.c.id.desc())).mappings().first())
    assert row is not None
    assert (row["status"], row["failure_reason"]) == ("queued", "telegram 429 retry after 7s")
    clock.advance(seconds=7)
    await tg.app.dispatcher.drain()
    assert tg.fake.sent(ANNE)[-1].text.startswith("Que voulez-vous faire ?")
    tg.fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    tg.fake.says(ANNE, "MENU")
    await tg.deliver()
    status = await tg.app.db.run(lambda c: c.execute(select(participants.c.status)).scalar())
    assert status == "stopped"


async def test_command_menu_is_published_per_language(tg: Telegram) -> None:
    published = {c.params.get("language_code"): [x["command"] for x in c.params["commands"]]
                 for c in tg.fake.calls if c.method == "setMyCommands"}
    assert set(published) == {"fr", "en", "oc", None}
    assert published["fr"] == ["start", "campagnes", "proposer", "voter", "aide", "langue",
                               "mesdonnees", "stop"]
    descriptions = {c.params.get("language_code"): c.params["commands"][1]["description"]
                    for c in tg.fake.calls if c.method == "setMyCommands"}
    assert descriptions["oc"] == "Veire las campanhas"


async def test_commands_work_as_keywords(tg: Telegram) -> None:
    await onboard(tg)
    assert (await tg.says("/campagnes")).text.startswith("Les campagnes :")
    assert (await tg.says("/mesdonnees")).text.startswith("Vos données :\nIdentifiant : 1001")
    assert "MENU, AIDE, LANGUE" in (await tg.says("/aide")).text


async def test_forged_webhook_calls_are_refused(tg: Telegram) -> None:
    update = {"update_id": 99, "message": {"message_id": 1, "date": 0, "text": "Bonjour",
                                           "chat": {"id": 5, "type": "private"}}}
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guess"}):
        response = await tg.client.post("/telegram/webhook", json=update, headers=headers)
        assert response.status_code == 403
    assert await tg.app.db.run(lambda c: c.execute(select(participants)).all()) == []


async def test_long_texts_are_split(tg: Telegram) -> None:
    from bot.channels.base import Reply, ReplyChoice
    from bot.channels.telegram import split_text

    parts = split_text(("mot " * 1500 + "\n\n") * 2)
    assert all(len(p) <= 4096 for p in parts) and len(parts) == 4
    sender = tg.app.dispatcher.senders["telegram"]
    await sender.send(str(ANNE), Reply("x" * 5000, [ReplyChoice("a", "1", "A")]))
    last_two = tg.fake.sent(ANNE)[-2:]
    assert [len(c.text) for c in last_two] == [4096, 904]
    assert not last_two[0].buttons and last_two[1].buttons  # the keyboard on the last part


VERIFIED = """slug: verified
kind: poll
title: {fr: Vote vérifié}
summary: {fr: "Une personne, un vote."}
verified_phone: true
phases:
  vote: {start: today-1, end: today+5}
ballot: {method: single}
seed_proposals:
  - {ref: a, title: {fr: Tram}}
  - {ref: b, title: {fr: Bus}}
"""


async def test_verified_phone_one_ballot_across_telegram_and_sms(tg: Telegram,
                                                                 tmp_path: Path) -> None:
    from bot.channels.base import Inbound

    (tmp_path / "verified.yaml").write_text(VERIFIED)
    await tg.app.load_campaigns(tmp_path / "verified.yaml")
    tram, bus = code_of(tg.app, "Tram"), code_of(tg.app, "Bus")
    await onboard(tg)
    ask = await tg.says(f"VOTE {tram}")
    assert ask.text.startswith("Ce vote demande un numéro vérifié")
    markup = ask.params["reply_markup"]
    assert markup["keyboard"][0][0] == {"text": "Partager mon numéro", "request_contact": True}
    tg.fake.shares_contact(ANNE, "33611223344", own=False)  # someone else's card: refused
    await tg.deliver()
    assert tg.fake.sent(ANNE)[-1].text.startswith("Ce vote demande")
    tg.fake.shares_contact(ANNE, "33611223344")
    await tg.deliver()
    choose = tg.fake.sent(ANNE)[-1]
    assert choose.text.startswith("Vote vérifié\nTouchez le projet de votre choix.")
    confirm = await tg.presses(choose, f"{tram} Tram")
    assert confirm is not None
    assert (await tg.presses(confirm, "Valider")) is not None
    # The same person by SMS: their number is verified by the network.
    for text in ("Bonjour", "1", "1", "3", "31000", f"VOTE {bus}", "1"):
        await tg.app.pipeline.handle(Inbound("sms", "+33611223344", text,
                                             received_at=tg.app.clock()))
    rows = await tg.app.db.run(lambda c: c.execute(
        select(ballots.c.voter, ballots.c.choices)).all())
    assert [tuple(r) for r in rows] == [("phone:+33611223344", bus[1:])]
    # Without a verified number (the console), the vote is explained, not offered.
    await tg.app.pipeline.handle(Inbound("console", "x", "Bonjour", received_at=tg.app.clock()))
    for text in ("1", "1", "3", "31000"):
        await tg.app.pipeline.handle(Inbound("console", "x", text, received_at=tg.app.clock()))
    handled = await tg.app.pipeline.handle(Inbound("console", "x", f"VOTE {tram}",
                                                   received_at=tg.app.clock()))
    assert handled.reply is not None
    assert handled.reply.text.startswith("« Vote vérifié » demande un numéro vérifié")


async def test_each_person_in_order_people_concurrently(tg: Telegram) -> None:
    people = [3001, 3002, 3003]
    for text in ("/start", "1", "1", "3"):
        for user in people:
            tg.fake.says(user, text)
    await tg.deliver()  # one batch of 12 updates, handled concurrently
    for user in people:
        assert [c.text.split("\n")[0][:24] for c in tg.fake.sent(user)] == [
            "Bonjour ! Avec Votz, pro", "Pour participer, nous ga", "Vous avez :",
            "Votre code postal ? (ex."]


async def test_proposing_an_idea_with_buttons(tg: Telegram) -> None:
    await onboard(tg)
    prompt = await tg.says("/proposer")  # the command menu's entry
    assert prompt.text.startswith("Décrivez votre idée pour « Tes idées pour la Région » en")
    assert prompt.buttons == []  # free text expected
    confirm = await tg.says("Un bus le samedi soir <b>entre</b> Mende et les villages 🚌")
    assert "« Un bus le samedi soir <b>entre</b> Mende et les villages 🚌 »" in confirm.text
    assert "parse_mode" not in confirm.params  # what people write is shown as written
    edit = await tg.presses(confirm, "Modifier")
    assert edit is not None and edit.text.startswith("Décrivez votre idée pour « Tes idées")
    confirm = await tg.says("Un bus le samedi soir")
    receipt = await tg.presses(confirm, "Envoyer")
    assert receipt is not None and receipt.text.startswith(
        "Merci ! Idée bien arrivée, code P")
    code = receipt.text.split("code ")[1].split(".")[0]
    mine = select(proposals.c.id, proposals.c.title, proposals.c.status).where(
        proposals.c.author_id.is_not(None))
    rows = await tg.app.db.run(lambda c: c.execute(mine).all())
    assert [(f"P{r.id}", r.status) for r in rows] == [(code, "submitted")]
    assert "Un bus le samedi soir" in rows[0].title
    assert await tg.presses(confirm, "Envoyer") is None  # a second tap: a short notice only
    assert tg.fake.answers(ANNE)[-1].startswith("Ce bouton n'est plus actif")
    assert len(await tg.app.db.run(lambda c: c.execute(mine).all())) == 1


async def test_a_failed_acknowledgement_does_not_lose_the_press(tg: Telegram) -> None:
    welcome = await tg.says("/start")
    # Telegram refuses to answer a callback query older than a few seconds.
    tg.fake.fail_next("answerCallbackQuery", 400,
                      "Bad Request: query is too old and response timeout expired")
    consent = await tg.presses(welcome, "Français")
    assert consent is not None and consent.text.startswith("Pour participer")
    assert any(c.method == "answerCallbackQuery!failed" for c in tg.fake.calls)
