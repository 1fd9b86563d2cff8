"""Personal data where it must not be: numbers and chat ids in logs, rows erasure left behind."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, select
from twilio.request_validator import RequestValidator

from bot.app import App
from bot.channels.base import PermanentSendError, Reply, SendResult, mask_address
from bot.channels.telegram import TelegramRunning, UpdatesNotStored
from bot.config import Settings
from bot.delivery.outbox import OutboxStatus, queue_values
from bot.server import Server
from bot.staff import privacy
from bot.store.tables import outbox, participants
from bot.testing.fake_telegram import TOKEN, FakeTelegram
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer
from tests.conftest import CAMPAIGNS, FixedClock, Person, RecordingSender

PUBLIC = "https://votz.example.org"
NUMBER = "+33612345678"
DIGITS = "612345678"  # in +33612345678 and 0612345678 alike
CHAT_ID = 987654321  # a private chat's id is the person's Telegram user id


# --- phone numbers and chat ids in logs ------------------------------------------------------


@dataclass
class SmsServer:
    app: App
    client: httpx.AsyncClient
    fake: FakeTwilio

    async def text(self, body: str, *, number: str = "0612345678") -> httpx.Response:
        params = {"MessageSid": f"SMin{len(body):030d}", "AccountSid": ACCOUNT_SID,
                  "From": number, "To": "+33756000000", "Body": body}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            PUBLIC + "/sms/inbound", params)
        return await self.client.post("/sms/inbound", data=params,
                                      headers={"X-Twilio-Signature": signature})


@pytest.fixture
async def sms(tmp_path: Path, clock: FixedClock) -> AsyncIterator[SmsServer]:
    fake = FakeTwilio()
    with LocalServer(fake.asgi()) as twilio:
        settings = replace(
            Settings.from_env({}, dotenv=None), database_url=f"sqlite:///{tmp_path / 'sms.db'}",
            twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
            twilio_from="+33756000000", twilio_api_url=twilio.url, public_url=PUBLIC,
            twilio_segments_per_second=10_000, contact="participation@example.org")
        async with Server.open(settings, clock=clock) as server:
            await server.app.load_campaigns(CAMPAIGNS)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                         base_url=PUBLIC) as client:
                yield SmsServer(server.app, client, fake)


def refuse_new_participants(database_url: str) -> None:
    """The database refuses to store anyone (a trigger): the statement that fails, and so
    the error, carries the person's address as a parameter (on PostgreSQL every statement
    does, message texts included)."""
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON participants "
                     "BEGIN SELECT RAISE(ABORT, 'refused'); END")


@pytest.mark.parametrize(("status", "left"), [(400, "failed"), (503, "queued")])
async def test_a_twilio_error_quoting_the_number_is_logged_and_stored_masked(
        sms: SmsServer, caplog: pytest.LogCaptureFixture, status: int, left: str) -> None:
    caplog.set_level(logging.INFO)
    sms.fake.fail_next(status, 21211,
                       f"The 'To' number {NUMBER} is not a valid phone number.")
    assert (await sms.text("Bonjour")).status_code == 200
    await sms.app.dispatcher.drain()
    row = await sms.app.db.run(lambda c: c.execute(
        select(outbox.c.status, outbox.c.failure_reason)).one())
    assert row.status == left
    assert row.failure_reason == (f"twilio {status} 21211: Unable to create record: The 'To' "
                                  "number +33•••••••78 is not a valid phone number.")
    assert any("outbox." in r.getMessage() for r in caplog.records)  # it was logged, masked
    assert DIGITS not in caplog.text


async def test_an_sms_the_database_refuses_is_logged_without_the_number(
        sms: SmsServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    refuse_new_participants(sms.app.settings.database_url)
    response = await sms.text("Bonjour")
    assert response.status_code == 503
    [logged] = [r for r in caplog.records if "sms.inbound.not_stored" in r.getMessage()]
    assert "IntegrityError: (sqlite3.IntegrityError) refused" in logged.getMessage()
    assert DIGITS not in caplog.text


async def test_a_telegram_update_the_database_refuses_is_logged_without_chat_id(
        tmp_path: Path, clock: FixedClock, fake_telegram: tuple[FakeTelegram, str],
        caplog: pytest.LogCaptureFixture) -> None:
    fake, url = fake_telegram
    settings = replace(
        Settings.from_env({}, dotenv=None), database_url=f"sqlite:///{tmp_path / 'tg.db'}",
        telegram_token=TOKEN, telegram_api_url=url, telegram_mode="polling",
        contact="participation@example.org")
    async with Server.open(settings, clock=clock) as server:
        running = server.channels["telegram"]
        assert isinstance(running, TelegramRunning)
        await running.receiver.start()
        refuse_new_participants(settings.database_url)
        caplog.set_level(logging.INFO)
        fake.says(CHAT_ID, "Bonjour")
        with pytest.raises(UpdatesNotStored):
            await running.receiver.poll_once()
        await running.receiver.stop()
    [logged] = [r for r in caplog.records if "telegram.update.not_stored" in r.getMessage()]
    assert "IntegrityError: (sqlite3.IntegrityError) refused" in logged.getMessage()
    assert str(CHAT_ID) not in caplog.text


@pytest.mark.parametrize(("text", "masked"), [
    (f"The 'To' number {NUMBER} is not valid", "The 'To' number +33•••••••78 is not valid"),
    ("to 06 12 34 56 78 or 0612345678", "to •• •• •• •• 78 or ••••••••78"),
    (f"chat {CHAT_ID} not found", "chat •••••••21 not found"),
    # Not addresses: codes, statuses, message SIDs, dates, hosts.
    ("twilio 429 20429: retry", "twilio 429 20429: retry"),
    ("SM" + "0" * 31 + "1 at 2026-03-10 from 127.0.0.1:8081",
     "SM" + "0" * 31 + "1 at 2026-03-10 from 127.0.0.1:8081"),
])
def test_mask_address(text: str, masked: str) -> None:
    assert mask_address(text) == masked
    assert mask_address(masked) == masked


# --- erasure leaves no row with the person's address -----------------------------------------


class FailingSender(RecordingSender):
    """Every send fails for good (the person's phone is off for ever, say)."""

    async def send(self, address: str, reply: Reply) -> SendResult:
        raise PermanentSendError("unreachable")


def rows_to(conn: Connection, address: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(
        select(outbox.c.participant_id, outbox.c.status, outbox.c.text)
        .where(outbox.c.address == address))]


async def erase_oneself_farewell_failing(app: App, sender: RecordingSender,
                                         me: Person) -> None:
    """`me` erases themselves in the conversation; the farewell cannot be delivered."""
    await me.say("4")  # Mes données
    await me.say("1")  # effacer
    app.dispatcher.add_sender("console", FailingSender())
    assert await me.say("1") == ""  # confirmed; the farewell fails
    app.dispatcher.add_sender("console", sender)


async def test_a_farewell_that_fails_leaves_nothing_behind(app: App,
                                                           sender: RecordingSender) -> None:
    me = Person(app, sender)
    await me.onboard()
    await erase_oneself_farewell_failing(app, sender, me)
    # Sent or failed for good, the farewell to an erased person keeps nothing.
    assert await app.db.run(lambda c: rows_to(c, me.address)) == []
    assert await privacy.erase(app.db, "console", me.address, app.clock()) is False


async def test_erasure_removes_every_row_to_the_address_whatever_its_status(
        app: App, sender: RecordingSender) -> None:
    me, other = Person(app, sender), Person(app, sender, address="+33600000002")
    await me.onboard()
    await erase_oneself_farewell_failing(app, sender, me)
    await me.onboard()  # back again: a new participant; the old farewell is not linked to it
    await other.onboard()

    def unlinked(conn: Connection) -> None:  # rows whose participant link was lost
        for status in OutboxStatus:
            conn.execute(outbox.insert().values(**{**queue_values(
                participant_id=None, channel="console", address=me.address,
                reply=Reply(f"pour toi ({status.value})"), now=app.clock()),
                "status": status.value}))

    await app.db.run(unlinked)
    others_before = await app.db.run(lambda c: rows_to(c, other.address))
    assert len(await app.db.run(lambda c: rows_to(c, me.address))) > len(OutboxStatus)

    assert await privacy.erase(app.db, "console", me.address, app.clock()) is True
    assert await app.db.run(lambda c: rows_to(c, me.address)) == []
    assert await app.db.run(lambda c: rows_to(c, other.address)) == others_before
    assert await app.db.run(lambda c: c.execute(
        select(participants.c.address)).scalars().all()) == [other.address]
    assert await privacy.erase(app.db, "console", me.address, app.clock()) is False
