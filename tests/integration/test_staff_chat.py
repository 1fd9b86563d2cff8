"""The Telegram staff chat, end to end: python-telegram-bot against the fake Bot API, SMS
through the real Twilio client to the fake Twilio, one `Server` as `votz run` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.base import DeliveryReport, DeliveryState, Inbound
from bot.channels.telegram import TelegramReceiver, TelegramRunning
from bot.config import Settings
from bot.server import Server
from bot.staff.chat import REFUSAL, StaffDesk
from bot.store.tables import (
    broadcasts,
    campaign_log,
    conversations,
    outbox,
    participants,
    proposals,
)
from bot.testing.fake_telegram import TOKEN, Call, FakeTelegram
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.conftest import CAMPAIGNS, FixedClock, code_of

STAFF, COLLEAGUE = 9001, 9002  # VOTZ_STAFF_TELEGRAM_IDS
ANNE, BEN = 1001, 1002  # participants on Telegram
SMS_PEOPLE = ("+33611000001", "+33611000002", "+33611000003")
OCCITAN_SMS = "+33611000004"


@dataclass
class Desk:
    """Staff and participants in one place, as a transcript: who says or presses what."""

    server: Server
    fake: FakeTelegram
    twilio: FakeTwilio
    clock: FixedClock

    @property
    def app(self) -> App:
        return self.server.app

    @property
    def receiver(self) -> TelegramReceiver:
        running = self.server.channels["telegram"]
        assert isinstance(running, TelegramRunning)
        return running.receiver

    @property
    def staff(self) -> StaffDesk:
        assert self.server.staff is not None
        return self.server.staff

    async def deliver(self) -> None:
        await self.receiver.poll_once()
        await self.receiver.settle()  # button presses answered, in tasks of their own
        await self.app.dispatcher.drain()

    async def says(self, user: int, text: str, *, language: str = "fr") -> list[Call]:
        """What the bot sent to `user` in answer."""
        before = len(self.fake.sent(user))
        self.fake.says(user, text, language=language)
        await self.deliver()
        return self.fake.sent(user)[before:]

    async def presses(self, user: int, message_id: int, label: str, *,
                      language: str = "fr") -> list[Call]:
        """Press the button `label` of a message as it stands now (after its edits)."""
        current = self.fake.message(user, message_id)
        data = current.data_of(label)
        assert data is not None, (label, current.buttons)
        before = len(self.fake.sent(user))
        self.fake.presses(user, data, message_id, language=language)
        await self.deliver()
        return self.fake.sent(user)[before:]

    def text(self, user: int, message_id: int) -> str:
        return self.fake.message(user, message_id).text

    def labels(self, user: int, message_id: int) -> list[str]:
        return [label for label, _ in self.fake.message(user, message_id).buttons]

    async def sms(self, number: str, *texts: str) -> None:
        for text in texts:
            await self.app.handle(Inbound("sms", number, text, received_at=self.clock()))
        await self.app.dispatcher.drain()


def mid(call: Call) -> int:
    return int(call.result["message_id"])


@pytest.fixture
async def desk(database: tuple[str, str | None], clock: FixedClock,
               fake_telegram: tuple[FakeTelegram, str],
               fake_twilio: tuple[FakeTwilio, str]) -> AsyncIterator[Desk]:
    fake, url = fake_telegram
    twilio, twilio_url = fake_twilio
    settings = replace(
        Settings.from_env({}, dotenv=None), database_url=database[0],
        telegram_token=TOKEN, telegram_api_url=url, telegram_mode="polling",
        staff_telegram_ids=f"{STAFF}, {COLLEAGUE}", contact="participation@example.org",
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
        twilio_from="+33756000000", twilio_api_url=twilio_url,
        public_url="https://votz.example.org", sms_price_per_segment=0.08,
        # The tests send faster than Telegram's 30/s and 1/s per chat would allow.
        telegram_messages_per_second=10_000, telegram_chat_interval=0,
        twilio_segments_per_second=10_000)
    async with Server.open(settings, clock=clock, schema=database[1]) as server:
        await server.app.load_campaigns(CAMPAIGNS)
        desk = Desk(server, fake, twilio, clock)
        await desk.receiver.start()
        try:
            yield desk
        finally:
            await desk.receiver.stop()


async def onboard(desk: Desk, user: int, *, language: str = "fr") -> None:
    labels = {"fr": ("Français", "J'accepte", "18-25 ans", "31000"),
              "en": ("English", "I agree", "18-25", "34000")}[language]
    [welcome] = await desk.says(user, "/start", language=language)
    [consent] = await desk.presses(user, mid(welcome), labels[0], language=language)
    [age] = await desk.presses(user, mid(consent), labels[1], language=language)
    [postcode] = await desk.presses(user, mid(age), labels[2], language=language)
    assert postcode.buttons == []  # typed
    [menu] = await desk.says(user, labels[3], language=language)
    assert menu.buttons, menu.text


async def propose(desk: Desk, user: int, idea: str, *, language: str = "fr") -> str:
    """`user` sends an idea to the campaign open for ideas; its code."""
    [prompt] = await desk.says(user, "/proposer", language=language)
    assert prompt.buttons == []  # the idea is typed
    [confirm] = await desk.says(user, idea, language=language)
    send = "Envoyer" if language == "fr" else "Send"
    [receipt] = await desk.presses(user, mid(confirm), send, language=language)
    code = receipt.text.split("code ")[1].split(".")[0]
    assert code.startswith("P"), receipt.text
    return code


def card_of(desk: Desk, user: int, code: str) -> Call:
    """The card announcing proposal `code` in a staff chat."""
    found = [c for c in desk.fake.sent(user) if f"Proposition {code} ·" in c.text]
    assert len(found) == 1, [c.text for c in desk.fake.sent(user)]
    return found[0]


async def status_of(desk: Desk, code: str) -> str:
    return str(await desk.app.db.run(lambda c: c.execute(
        select(proposals.c.status).where(proposals.c.id == int(code[1:]))).scalar_one()))


# --- who gets the staff chat ------------------------------------------------------------------


async def test_someone_not_on_staff_is_refused_and_never_reaches_the_participant_flows(
        desk: Desk) -> None:
    [refused] = await desk.says(ANNE, "/stats")
    assert refused.text == REFUSAL
    assert refused.buttons == []
    # The participant flows never saw it: no participant, no conversation was made.
    people = await desk.app.db.run(lambda c: c.execute(select(participants.c.id)).all())
    assert people == []
    # A staff button, forged or forwarded, is refused on the button and does nothing.
    await onboard(desk, BEN)
    code = await propose(desk, BEN, "Des bancs devant la médiathèque")
    forged = desk.fake.presses(ANNE, f"staff:pub:{code[1:]}:s", 1)
    await desk.deliver()
    assert await desk.receiver.webhook_update(forged)  # delivered again: answered once
    assert desk.fake.answers(ANNE) == [REFUSAL]
    assert await status_of(desk, code) == "submitted"
    # /diffusion too, and the same update delivered twice is answered once.
    update = desk.fake.says(ANNE, "/diffusion")
    assert await desk.receiver.webhook_update(update)
    assert await desk.receiver.webhook_update(update)
    await desk.app.dispatcher.drain()
    assert [c.text for c in desk.fake.sent(ANNE)] == [REFUSAL, REFUSAL]
    rows = await desk.app.db.run(lambda c: c.execute(
        select(participants.c.address).where(participants.c.channel == "telegram")).all())
    assert [r.address for r in rows] == [str(BEN)]


async def test_staff_get_their_menu_never_the_participant_flows(desk: Desk) -> None:
    [menu] = await desk.says(STAFF, "/start")
    assert menu.text == "Équipe Votz : que voulez-vous faire ?"
    assert [label for label, _ in menu.buttons] == ["Modération", "Diffusion", "Chiffres"]
    assert all(data.startswith("staff:") for _, data in menu.buttons)
    await desk.staff.start()  # their own command menu, in their chats only
    scoped = {c.params["scope"]["chat_id"]: [x["command"] for x in c.params["commands"]]
              for c in desk.fake.calls if c.method == "setMyCommands" and "scope" in c.params}
    assert scoped == {STAFF: ["stats", "moderation", "diffusion", "equipe"],
                      COLLEAGUE: ["stats", "moderation", "diffusion", "equipe"]}
    [again] = await desk.says(STAFF, "bonjour")
    assert again.text.startswith("Je n'ai pas compris.")
    staff_rows = await desk.app.db.run(lambda c: c.execute(
        select(participants.c.id).union_all(select(conversations.c.participant_id))).all())
    assert staff_rows == []
    # Replies to staff left through the outbox, as every message does.
    rows = await desk.app.db.run(lambda c: c.execute(
        select(outbox.c.address, outbox.c.participant_id, outbox.c.status)).all())
    assert {tuple(r) for r in rows} == {(str(STAFF), None, "sent")}
    # A redelivered staff update is handled once.
    update = desk.fake.says(STAFF, "/stats")
    for _ in range(2):
        assert await desk.receiver.webhook_update(update)
    await desk.app.dispatcher.drain()
    assert [c.text.split("\n")[0][:9] for c in desk.fake.sent(STAFF)[2:]] == ["Chiffres "]


# --- moderation --------------------------------------------------------------------------------


async def test_a_new_proposal_reaches_staff_and_the_rejection_reaches_its_author_in_english(
        desk: Desk) -> None:
    await onboard(desk, ANNE, language="en")
    code = await propose(desk, ANNE, "Free buses on Saturday nights", language="en")
    cards = {user: card_of(desk, user, code) for user in (STAFF, COLLEAGUE)}
    card = cards[STAFF]
    assert card.text.startswith(f"Nouvelle proposition\nProposition {code} · Tes idées pour "
                                "la Région\n« Free buses on Saturday nights »")
    assert [label for label, _ in card.buttons] == ["Publier", "Rejeter"]
    # Rejeter: the card asks why, one button per reason.
    assert await desk.presses(STAFF, mid(card), "Rejeter") == []
    assert f"Pourquoi rejeter {code} ?" in desk.text(STAFF, mid(card))
    assert desk.labels(STAFF, mid(card)) == [
        "spam", "propos injurieux", "hors sujet", "données personnelles", "doublon",
        "non éligible", "Retour"]
    assert await status_of(desk, code) == "submitted"
    await desk.presses(STAFF, mid(card), "hors sujet")
    assert await status_of(desk, code) == "rejected"
    decided = desk.text(STAFF, mid(card))
    assert decided.endswith("❌ Rejetée par User9001 à 11:00 (hors sujet)")
    assert desk.labels(STAFF, mid(card)) == []
    # The author is told, in English, with the reason.
    told = desk.fake.sent(ANNE)[-1].text
    assert told == (f"Your idea {code} for \"Your ideas for the Region\" was not retained: off "
                    "topic for this campaign. A question? Send HELP.")
    log = await desk.app.db.run(lambda c: c.execute(
        select(campaign_log.c.actor, campaign_log.c.action, campaign_log.c.detail)
        .where(campaign_log.c.action.like("proposal.%"))).all())
    assert [tuple(r) for r in log] == [("telegram:9001", "proposal.reject",
                                        f"{code} reason=off_topic")]
    # A colleague pressing Publier on their own card afterwards: told, nothing done twice.
    sent_to_anne = len(desk.fake.sent(ANNE))
    await desk.presses(COLLEAGUE, mid(cards[COLLEAGUE]), "Publier")
    assert desk.fake.answers(COLLEAGUE)[-1] == "Déjà rejetée par User9001 à 11:00 (hors sujet)."
    assert desk.text(COLLEAGUE, mid(cards[COLLEAGUE])).endswith(
        "❌ Rejetée par User9001 à 11:00 (hors sujet)")
    assert await status_of(desk, code) == "rejected"
    assert len(desk.fake.sent(ANNE)) == sent_to_anne


async def test_publish_and_flags_and_similar_ideas(desk: Desk) -> None:
    await onboard(desk, ANNE)
    first = await propose(desk, ANNE, "Des bancs dans la cour du lycée")
    second = await propose(desk, ANNE, "Plus de bancs dans la cour, appelez-moi au 06 12 34 "
                                       "56 78")
    plain = card_of(desk, STAFF, first)
    assert "⚠" not in plain.text
    flagged = card_of(desk, STAFF, second)
    assert "⚠ contient un numéro de téléphone" in flagged.text.split("\n")
    assert f"Proches : {first} « Des bancs dans la cour du lycée » (soumise)" in flagged.text
    await desk.presses(STAFF, mid(plain), "Publier")
    assert await status_of(desk, first) == "published"
    assert desk.text(STAFF, mid(plain)).endswith("✅ Publiée par User9001 à 11:00")
    assert desk.labels(STAFF, mid(plain)) == []
    assert desk.fake.answers(STAFF)[-1] == "Publiée par User9001 à 11:00"
    assert desk.fake.sent(ANNE)[-1].text.startswith(f"Votre idée {first}")
    # /moderation lists what still waits, with its flags.
    sent = await desk.says(STAFF, "/moderation")
    assert [c.text.split("\n")[0] for c in sent] == [
        "1 proposition à modérer :", f"Proposition {second} · Tes idées pour la Région"]
    assert "⚠ contient un numéro de téléphone" in sent[1].text


async def test_a_published_idea_in_an_open_vote_can_be_hidden_not_rejected(desk: Desk) -> None:
    bench = code_of(desk.app, "Bancs publics")  # published, its vote is open
    [card] = await desk.says(STAFF, bench)
    assert [label for label, _ in card.buttons] == ["Masquer"]
    await desk.presses(STAFF, mid(card), "Masquer")
    assert "Pourquoi masquer" in desk.text(STAFF, mid(card))
    await desk.presses(STAFF, mid(card), "propos injurieux")
    assert await status_of(desk, bench) == "hidden"
    assert desk.text(STAFF, mid(card)).endswith(
        "🙈 Masquée par User9001 à 11:00 (propos injurieux)")
    assert desk.labels(STAFF, mid(card)) == []
    # Its card again (its code typed): it can be shown again, never rejected while voting.
    [again] = await desk.says(STAFF, bench)
    assert again.text.endswith("🙈 Masquée par User9001 à 11:00 (propos injurieux)")
    assert [label for label, _ in again.buttons] == ["Publier"]


# --- broadcasts --------------------------------------------------------------------------------


async def people(desk: Desk) -> None:
    """Three SMS people in French, one in Occitan, one Telegram person in each of French and
    English."""
    for number in SMS_PEOPLE:
        await desk.sms(number, "Bonjour", "1", "1", "3", "31000")
    await desk.sms(OCCITAN_SMS, "Bonjour", "3", "1", "3", "31000")
    await onboard(desk, ANNE)
    await onboard(desk, BEN, language="en")


async def compose(desk: Desk, french: str, *, english: str | None = None) -> Call:
    """Staff compose a broadcast to everyone on every channel; the preview."""
    [ask] = await desk.says(STAFF, "/diffusion")
    assert ask.text == "Nouvelle diffusion. Écrivez le message en français."
    # Telegram delivers the French text twice (a retry): it is taken once, as the French.
    before = len(desk.fake.sent(STAFF))
    update = desk.fake.says(STAFF, french)
    for _ in range(2):
        assert await desk.receiver.webhook_update(update)
    await desk.deliver()
    [ask_en] = desk.fake.sent(STAFF)[before:]
    assert [label for label, _ in ask_en.buttons] == ["Passer", "Annuler"]
    if english is None:
        [ask_oc] = await desk.presses(STAFF, mid(ask_en), "Passer")
    else:
        [ask_oc] = await desk.says(STAFF, english)
    [audience] = await desk.presses(STAFF, mid(ask_oc), "Passer")
    assert [label for label, _ in audience.buttons] == [
        "Tout le monde", "Public d'une campagne", "N'ont pas encore voté", "Un département",
        "Une tranche d'âge", "Annuler"]
    [channel] = await desk.presses(STAFF, mid(audience), "Tout le monde")
    [preview] = await desk.presses(STAFF, mid(channel), "Tous les canaux")
    return preview


async def test_a_broadcast_composed_previewed_confirmed_sent_and_followed(desk: Desk) -> None:
    await people(desk)
    text = "La Région vous invite au forum citoyen samedi à Mende."
    preview = await compose(desk, text, english="The Region invites you to Saturday's forum.")
    lines = preview.text.split("\n")
    assert "Destinataires : 6" in lines
    assert "· SMS : 4 (français 3, occitan 1)" in lines
    assert "· Telegram : 2 (anglais 1, français 1)" in lines
    assert "Pas de texte en occitan : le français sera envoyé." in lines
    assert "SMS : 1 segment × 3 + 1 segment × 1 = 4 segments, coût estimé 0,32 €" in lines
    assert [label for label, _ in preview.buttons] == [
        "Envoyer maintenant", "Programmer l'envoi", "Annuler"]
    assert await desk.app.db.run(lambda c: c.execute(select(broadcasts)).all()) == []
    # Confirmed: queued, and a progress message with its Annuler button.
    before = len(desk.fake.sent(STAFF))
    desk.fake.presses(STAFF, preview.data_of("Envoyer maintenant") or "", mid(preview))
    await desk.receiver.poll_once()
    await desk.app.dispatcher.channels["telegram"].run_once()  # Telegram first, SMS waits
    [progress] = desk.fake.sent(STAFF)[before:]
    assert progress.text.startswith("Diffusion n°1 · « La Région vous invite au forum citoy")
    assert [label for label, _ in progress.buttons] == ["Annuler"]
    await desk.staff.refresh()
    assert ("6 messages : en file 4 · en cours 0 · envoyés 2 · remis 0 · échecs 0 · restants 4"
            in desk.text(STAFF, mid(progress)))
    assert desk.labels(STAFF, mid(progress)) == ["Annuler"]
    assert desk.fake.sent(BEN)[-1].text == "The Region invites you to Saturday's forum."
    assert desk.fake.sent(ANNE)[-1].text == text
    # The SMS leave; two are reported delivered.
    await desk.app.dispatcher.drain()
    assert len([m for m in desk.twilio.messages if m.body.startswith(text)]) == 4
    for message in [m for m in desk.twilio.messages if m.body.startswith(text)][:2]:
        assert await desk.app.report(DeliveryReport(message.sid, DeliveryState.DELIVERED))
    await desk.staff.refresh()
    final = desk.text(STAFF, mid(progress))
    assert ("6 messages : en file 0 · en cours 0 · envoyés 6 · remis 2 · échecs 0 · restants 0"
            in final)
    assert desk.labels(STAFF, mid(progress)) == []
    edits = [c.text for c in desk.fake.edits(STAFF, mid(progress))]
    assert len(edits) == 2 and edits[0] != edits[1]
    await desk.app.dispatcher.drain()
    assert desk.fake.sent(STAFF)[-1].text == (
        "Diffusion n°1 terminée : 6 messages, 2 remis, 4 envoyés sans accusé de réception, "
        "0 échecs.")
    calls = len(desk.fake.calls)
    await desk.staff.refresh()  # reported once: it is no longer followed
    await desk.app.dispatcher.drain()
    assert desk.fake.calls[calls:] == []


async def test_a_second_broadcast_is_cancelled_halfway(desk: Desk) -> None:
    await people(desk)
    preview = await compose(desk, "Rappel : le vote ferme dimanche.")
    before = len(desk.fake.sent(STAFF))
    # Twilio refuses two of the four SMS for now (5xx: tried again later).
    desk.twilio.fail_next(503, 20503)
    desk.twilio.fail_next(503, 20503)
    await desk.presses(STAFF, mid(preview), "Envoyer maintenant")
    [progress] = desk.fake.sent(STAFF)[before:]
    await desk.staff.refresh()
    assert "échecs 0 · restants 2" in desk.text(STAFF, mid(progress))
    await desk.presses(STAFF, mid(progress), "Annuler")
    assert desk.fake.answers(STAFF)[-1] == "Annulée : 2 messages ne partiront pas."
    assert "Annulée : 2 messages ne partiront pas." in desk.text(STAFF, mid(progress))
    assert desk.labels(STAFF, mid(progress)) == []
    statuses = await desk.app.db.run(lambda c: c.execute(
        select(outbox.c.status).where(outbox.c.broadcast_id.is_not(None))).all())
    assert sorted(r.status for r in statuses) == ["cancelled", "cancelled", "sent", "sent",
                                                  "sent", "sent"]
    # Later: the two refused SMS never leave; the final report says so, once.
    desk.clock.advance(minutes=10)
    await desk.app.dispatcher.drain()
    assert len([m for m in desk.twilio.messages if m.body.startswith("Rappel")]) == 2
    await desk.staff.refresh()
    await desk.app.dispatcher.drain()
    assert desk.fake.sent(STAFF)[-1].text == (
        "Diffusion n°1 annulée par User9001 : 4 envoyés (dont 0 remis), 0 échecs, "
        "2 annulés.")
    # A second press (a double tap, another staff member's chat): it says so.
    desk.fake.presses(STAFF, "staff:stop:1", mid(progress))
    await desk.deliver()
    assert desk.fake.answers(STAFF)[-1] == "Déjà annulée."


async def test_a_broadcast_set_for_later_and_a_targeted_audience(desk: Desk) -> None:
    await people(desk)
    [ask] = await desk.says(STAFF, "/diffusion")
    assert [label for label, _ in ask.buttons] == ["Annuler"]
    [ask_en] = await desk.says(STAFF, "Forum à Toulouse ce soir.")
    [ask_oc] = await desk.presses(STAFF, mid(ask_en), "Passer")
    [audience] = await desk.presses(STAFF, mid(ask_oc), "Passer")
    [departement] = await desk.presses(STAFF, mid(audience), "Un département")
    assert departement.text.startswith("Tapez le numéro du département")
    [wrong] = await desk.says(STAFF, "75")
    assert wrong.text.startswith("Département inconnu. Ceux de la Région : 09, 11,")
    [channel] = await desk.says(STAFF, "31")
    [preview] = await desk.presses(STAFF, mid(channel), "Telegram")
    assert "Public : telegram · dép. 31" in preview.text
    assert "Destinataires : 1" in preview.text.split("\n")  # Anne (Ben lives in the 34)
    [when] = await desk.presses(STAFF, mid(preview), "Programmer l'envoi")
    assert when.text.startswith("À quelle heure l'envoyer ?")
    [confirm] = await desk.says(STAFF, "18:30")
    assert confirm.text == ("Envoyer « Forum à Toulouse ce soir. » à 1 destinataire, le 10/03 "
                            "à 18:30 (heure de Paris) ?")
    [progress] = await desk.presses(STAFF, mid(confirm), "Confirmer l'envoi")
    assert "Programmée pour le 10/03 à 18:30 (heure de Paris)." in progress.text
    row = await desk.app.db.run(lambda c: c.execute(
        select(broadcasts.c.status, broadcasts.c.send_at, broadcasts.c.created_by)).one())
    assert (row.status, row.send_at.isoformat(), row.created_by) == (
        "scheduled", "2026-03-10T17:30:00+00:00", "telegram:9001")


# --- live figures ------------------------------------------------------------------------------


async def test_stats_for_staff_only(desk: Desk) -> None:
    await onboard(desk, ANNE)
    await propose(desk, ANNE, "Un composteur au jardin partagé")
    garden = code_of(desk.app, "Jardin partagé")
    [confirm] = await desk.says(ANNE, f"VOTE {garden}")
    [receipt] = await desk.presses(ANNE, mid(confirm), "Valider")
    assert receipt.text.startswith("A voté")
    [figures] = await desk.says(STAFF, "/stats")
    lines = figures.text.split("\n")
    assert lines[0] == "Chiffres au 10/03 à 11:00 (réservés à l'équipe)"
    budget = lines.index("Budget des lycées (vote)")
    assert lines[budget + 1:budget + 4] == [
        "· participants : 1 éligible, dont 1 actif", "· propositions à modérer : 0",
        "· votes : 1"]
    ideas = lines.index("Tes idées pour la Région (dépôt des idées)")
    assert lines[ideas + 2] == "· propositions à modérer : 1"
    # The public never sees how many have voted before the results.
    [listing] = await desk.says(ANNE, "CAMPAGNES")
    [detail] = await desk.presses(ANNE, mid(listing), "Budget des lycées")
    assert "Étape : vote" in detail.text
    for reply in desk.fake.sent(ANNE):
        assert not any(word in reply.text for word in ("1 vote", "votants", "votes :"))


async def test_a_broadcast_to_those_who_have_not_voted_yet(desk: Desk) -> None:
    await people(desk)
    garden = code_of(desk.app, "Jardin partagé")
    [confirm] = await desk.says(ANNE, f"VOTE {garden}")
    await desk.presses(ANNE, mid(confirm), "Valider")
    await desk.says(STAFF, "/diffusion")
    [ask_en] = await desk.says(STAFF, "Il reste 10 jours pour voter !")
    [ask_oc] = await desk.presses(STAFF, mid(ask_en), "Passer")
    [audience] = await desk.presses(STAFF, mid(ask_oc), "Passer")
    [campaign] = await desk.presses(STAFF, mid(audience), "N'ont pas encore voté")
    assert campaign.text == "Quelle campagne ?"
    assert "Budget des lycées" in [label for label, _ in campaign.buttons]
    [channel] = await desk.presses(STAFF, mid(campaign), "Budget des lycées")
    [preview] = await desk.presses(STAFF, mid(channel), "Tous les canaux")
    assert "Public : pas encore voté (pick)" in preview.text
    assert "Destinataires : 5" in preview.text.split("\n")  # everyone but Anne
    await desk.presses(STAFF, mid(preview), "Envoyer maintenant")
    assert desk.fake.sent(ANNE)[-1].text != "Il reste 10 jours pour voter !"
    assert desk.fake.sent(BEN)[-1].text == "Il reste 10 jours pour voter !"
    assert len([m for m in desk.twilio.messages if m.body.startswith("Il reste")]) == 4
