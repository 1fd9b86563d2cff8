"""Delivery under faults: a locked or dropped database, a slow provider, STOP racing a queue,
two senders on one database, an error after the provider answered.

Each test names the guarantee it holds; each fails on the dispatcher that sent in batches of
20 from one loop for every channel (before the fault-tolerance work).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.base import Inbound, Reply, SendResult
from bot.channels.sms import TwilioSender
from bot.channels.telegram import TelegramRunning, UpdatesNotStored
from bot.config import Settings
from bot.delivery.outbox import NOT_SENT_STOPPED, OutboxStatus, queue_values
from bot.server import Server
from bot.store.tables import ballots, outbox, participants
from bot.supervision import Supervisor
from bot.testing.fake_telegram import TOKEN, FakeTelegram
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer
from bot.testing.sms_webhook import signed_form
from tests.conftest import POSTGRES_URL, FixedClock, Person, RecordingSender
from tests.integration.reminders import add_person
from tests.integration.test_telegram import VERIFIED

PUBLIC = "https://votz.example.org"


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 10) -> None:
    """Poll something other tasks or threads are doing; bounded, never a blind sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def sms_settings(url: str, twilio: str, **extra: Any) -> Settings:
    return replace(
        Settings.from_env({}, dotenv=None), database_url=url, public_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
        twilio_from="+33756000000", twilio_api_url=twilio, twilio_segments_per_second=10_000,
        contact="participation@example.org", **extra)


async def post_sms(client: httpx.AsyncClient, text: str, number: str, sid: str
                   ) -> httpx.Response:
    form, headers = signed_form(text, number, public_url=PUBLIC, auth_token=AUTH_TOKEN, sid=sid)
    return await client.post("/sms/inbound", data=form, headers=headers)


def quick_supervisor(server: Server) -> Supervisor:
    """Restarts within tens of milliseconds, so tests see a failure and a recovery quickly."""
    server.supervisor = Supervisor(server.app.metrics, first_delay=0.05, max_delay=0.2,
                                   healthy_after=0.3)
    return server.supervisor


# --- 1, 6: a database error stops nothing for good, and loses nothing acknowledged ----------


async def test_a_locked_sqlite_database_delays_replies_but_loses_none(
        tmp_path: Path, clock: FixedClock, fake_twilio: tuple[FakeTwilio, str]) -> None:
    fake, url = fake_twilio
    path = tmp_path / "locked.db"
    settings = sms_settings(f"sqlite:///{path}", url, sqlite_busy_seconds=0.2)
    async with Server.open(settings, clock=clock) as server:
        supervisor = quick_supervisor(server)
        await server.start()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                     base_url=PUBLIC) as client:
            assert (await client.get("/healthz")).status_code == 200
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            try:
                # The message cannot be stored: Twilio is told to try again, not "OK".
                first = await post_sms(client, "Bonjour", "0612345678", "SMlocked1")
                assert first.status_code == 503
                server.app.dispatcher.wake()
                await eventually(supervisor.failing, "the dispatcher to fail and restart")
                health = await client.get("/healthz")
                assert health.status_code == 503
                assert "task dispatcher.sms failing" in health.json()["problems"][0]
            finally:
                other.rollback()
                other.close()
            # Twilio's retry of the same message is stored once and answered once.
            assert (await post_sms(client, "Bonjour", "0612345678", "SMlocked1")
                    ).status_code == 200
            assert (await post_sms(client, "Bonjour", "0612345678", "SMlocked1")
                    ).status_code == 200
            await eventually(lambda: len(fake.messages) == 1, "the reply")
            await eventually(lambda: not supervisor.failing(), "the dispatcher to recover")
            assert (await client.get("/healthz")).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert 'votz_task_restarts_total{task="dispatcher.sms"}' in metrics
        await server.stop()
    assert [m.to for m in fake.messages] == ["+33612345678"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_replies_go_on_after_postgresql_drops_every_connection(
        database: tuple[str, str | None], clock: FixedClock,
        fake_twilio: tuple[FakeTwilio, str]) -> None:
    fake, url = fake_twilio
    instance = f"failover-{uuid.uuid4().hex[:8]}"
    settings = sms_settings(database[0], url, instance=instance)
    async with Server.open(settings, clock=clock, schema=database[1]) as server:
        supervisor = quick_supervisor(server)
        await server.start()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                     base_url=PUBLIC) as client:
            assert (await post_sms(client, "Bonjour", "0612345678", "SMpg1")).status_code == 200
            await eventually(lambda: len(fake.messages) == 1, "the first reply")
            # What a failover does: the server drops every connection of this process.
            admin = await asyncpg.connect(POSTGRES_URL)
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = $1", f"votz {instance}")
            finally:
                await admin.close()
            assert killed >= 1
            assert (await post_sms(client, "1", "0612345678", "SMpg2")).status_code == 200
            await eventually(lambda: len(fake.messages) == 2, "the reply after the failover")
            # A loop caught in the middle of a statement was restarted; all recover.
            await eventually(lambda: not supervisor.failing(), "every loop to recover")
            assert (await client.get("/healthz")).status_code == 200
        await server.stop()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_blocked_postgresql_database_is_reported_and_replies_resume(
        database: tuple[str, str | None], clock: FixedClock,
        fake_twilio: tuple[FakeTwilio, str]) -> None:
    fake, url = fake_twilio
    url_, schema = database
    async with Server.open(sms_settings(url_, url), clock=clock, schema=schema) as server:
        quick_supervisor(server)
        await server.start()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                     base_url=PUBLIC) as client:
            admin = await asyncpg.connect(POSTGRES_URL)
            lock = admin.transaction()
            await lock.start()
            try:  # another session holds the outbox: every write and read of it waits
                await admin.execute(f"LOCK TABLE {schema}.outbox IN ACCESS EXCLUSIVE MODE")
                posted = asyncio.create_task(post_sms(client, "Bonjour", "0612345678", "SMb1"))
                health = await client.get("/healthz")
                assert health.status_code == 503
                assert health.json()["problems"][0].startswith("database unreachable")
                assert not posted.done() and fake.messages == []
            finally:
                await lock.rollback()
                await admin.close()
            assert (await posted).status_code == 200
            await eventually(lambda: len(fake.messages) == 1, "the reply after the lock")
            await eventually(lambda: not server.supervisor.failing(), "every loop to recover")
            assert (await client.get("/healthz")).status_code == 200
        await server.stop()


# --- 3: Telegram updates are confirmed only once stored ----------------------------------------


@pytest.fixture(params=["polling", "webhook"])
async def telegram_on_a_lockable_file(
        request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock,
        fake_telegram: tuple[FakeTelegram, str]) -> AsyncIterator[tuple[Server, Path]]:
    _, url = fake_telegram
    path = tmp_path / "tg.db"
    settings = replace(
        Settings.from_env({}, dotenv=None), database_url=f"sqlite:///{path}",
        telegram_token=TOKEN, telegram_api_url=url, telegram_mode=request.param,
        public_url=PUBLIC, telegram_messages_per_second=10_000, telegram_chat_interval=0,
        sqlite_busy_seconds=0.2)
    async with Server.open(settings, clock=clock) as server:
        running = server.channels["telegram"]
        assert isinstance(running, TelegramRunning)
        await running.receiver.start()
        yield server, path


async def test_a_telegram_update_that_could_not_be_stored_comes_again(
        telegram_on_a_lockable_file: tuple[Server, Path],
        fake_telegram: tuple[FakeTelegram, str]) -> None:
    server, path = telegram_on_a_lockable_file
    fake, _ = fake_telegram
    running = server.channels["telegram"]
    assert isinstance(running, TelegramRunning)
    receiver = running.receiver
    webhook = server.app.settings.telegram_mode == "webhook"
    fake.says(1001, "/start")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                 base_url=PUBLIC) as client:
        async def deliver() -> list[int]:
            if not webhook:
                await receiver.poll_once()
                return []
            pending, fake._updates = fake._updates, []
            statuses = []
            for update in pending:
                response = await client.post(
                    "/telegram/webhook", json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": fake.webhook["secret"]})
                statuses.append(response.status_code)
                if response.status_code != 200:
                    fake._updates.append(update)  # Telegram keeps it and posts it again
            return statuses

        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            if webhook:
                assert await deliver() == [503]
            else:
                with pytest.raises(UpdatesNotStored):
                    await deliver()
            # Telegram still holds it: not confirmed (polling) or not answered 200 (webhook).
            assert [u["update_id"] for u in fake._updates] == [1]
        finally:
            other.rollback()
            other.close()
        await deliver()
        await deliver()  # the next getUpdates confirms it
        assert fake._updates == []
    await server.app.dispatcher.drain()
    sent = fake.sent(1001)
    assert len(sent) == 1 and "Votz" in sent[0].text


async def test_the_telegram_webhook_refuses_malformed_and_oversized_bodies(
        telegram_on_a_lockable_file: tuple[Server, Path]) -> None:
    server, _ = telegram_on_a_lockable_file
    running = server.channels["telegram"]
    assert isinstance(running, TelegramRunning)
    secret = {"X-Telegram-Bot-Api-Secret-Token": running.receiver.secret}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                 base_url=PUBLIC) as client:
        for body in (b"{not json", b"[1, 2]", b'{"update_id": "x"}',
                     b'{"update_id": 5, "message": {"chat": 3}}'):
            response = await client.post("/telegram/webhook", content=body, headers=secret)
            assert response.status_code == 400, body
        huge = b'{"update_id": 1, "x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        response = await client.post("/telegram/webhook", content=huge, headers=secret)
        assert response.status_code == 413


# --- 7: a slow provider holds only its own channel ---------------------------------------------


async def test_a_provider_that_does_not_answer_times_out_and_holds_only_its_channel(
        tmp_path: Path, clock: FixedClock, fake_telegram: tuple[FakeTelegram, str]) -> None:
    telegram, telegram_url = fake_telegram
    twilio = FakeTwilio(latency=30)  # an answer that would take 30 s
    with LocalServer(twilio.asgi()) as twilio_server:
        settings = replace(
            sms_settings(f"sqlite:///{tmp_path / 'slow.db'}", twilio_server.url),
            telegram_token=TOKEN, telegram_api_url=telegram_url,
            telegram_messages_per_second=10_000, telegram_chat_interval=0,
            send_timeout_seconds=0.5)
        async with Server.open(settings, clock=clock) as server:
            quick_supervisor(server)
            await server.start()
            app = server.app
            started = time.monotonic()
            await app.pipeline.handle(Inbound("sms", "+33612345678", "Bonjour",
                                              received_at=clock()))
            await app.pipeline.handle(Inbound("telegram", "1001", "Bonjour",
                                              received_at=clock()))
            await eventually(lambda: telegram.sent(1001), "the Telegram reply")
            telegram_after = time.monotonic() - started
            await eventually(lambda: _row_reason(app), "the SMS send to time out")
            sms_after = time.monotonic() - started
            await server.stop()
            row = await app.db.run(lambda c: c.execute(
                select(outbox.c.status, outbox.c.failure_reason, outbox.c.attempts)
                .where(outbox.c.channel == "sms")).one())
    assert telegram_after < 0.5  # not behind the SMS that waits for Twilio
    assert sms_after < 5  # the 30 s answer was not waited for
    assert (row.status, row.attempts) == ("queued", 1)  # a retry, later
    assert "network: TimeoutError" in row.failure_reason


def _row_reason(app: App) -> bool:
    path = app.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT failure_reason FROM outbox WHERE channel = 'sms'").fetchone()
    return bool(found and found[0])


# --- 9: STOP is honoured at send time ----------------------------------------------------------


async def test_nothing_queued_before_stop_leaves_after_it(app: App, sender: RecordingSender,
                                                         clock: FixedClock) -> None:
    me = Person(app, sender)
    await me.onboard()
    pid = await app.db.run(lambda c: c.execute(
        select(participants.c.id).where(participants.c.address == me.address)).scalar_one())

    def remind(key: str) -> Callable[[Any], object]:
        return lambda c: c.execute(outbox.insert().values(**queue_values(
            participant_id=pid, channel="console", address=me.address,
            reply=Reply("Rappel : le vote ferme demain."), now=clock(), idempotency_key=key)))

    await app.db.run(remind("reminder:1"))
    before = len(sender.sent)
    # STOP arrives before the dispatcher got to the reminder.
    await app.pipeline.handle(Inbound("console", me.address, "STOP", received_at=clock()))
    await app.dispatcher.drain()
    texts = [r.text for _, r in sender.sent[before:]]
    assert len(texts) == 1 and "Rappel" not in texts[0]  # only STOP's confirmation
    row = await app.db.run(lambda c: c.execute(
        select(outbox.c.status, outbox.c.failure_reason)
        .where(outbox.c.idempotency_key == "reminder:1")).one())
    assert (row.status, row.failure_reason) == ("failed", NOT_SENT_STOPPED)
    # After START, messages go again.
    await me.say("START")
    await app.db.run(remind("reminder:2"))
    await app.dispatcher.drain()
    assert sender.sent[-1][1].text == "Rappel : le vote ferme demain."


# --- 8: an error after the provider may have accepted a message is not retried ---------------


class AnswersGarbage:
    """A sender whose provider accepted the message, then whose answer could not be read."""

    channel = "console"
    rate = 0.0

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, address: str, reply: Reply) -> SendResult:
        self.calls += 1
        raise ValueError("Expecting value: line 1 column 1 (char 0)")

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None


async def test_an_error_after_sending_is_not_sent_again(app: App, clock: FixedClock) -> None:
    garbage = AnswersGarbage()
    app.dispatcher.add_sender("console", garbage)
    await app.pipeline.handle(Inbound("console", "+33600000009", "bonjour", received_at=clock()))
    await app.dispatcher.drain()
    clock.advance(minutes=10)
    await app.dispatcher.drain()
    assert garbage.calls == 1
    row = await app.db.run(lambda c: c.execute(
        select(outbox.c.status, outbox.c.failure_reason)).one())
    assert row.status == OutboxStatus.FAILED
    assert row.failure_reason.startswith("outcome unknown, not retried: ValueError")


# --- 5: one person's replies keep their order, whichever process sends them ------------------


class SlowRecorder:
    """Records what it sends, after a random pause (so concurrent sends can overtake)."""

    channel = "console"
    rate = 0.0

    def __init__(self, log: list[tuple[str, str]], seed: int) -> None:
        self.log = log
        self.random = random.Random(seed)

    async def send(self, address: str, reply: Reply) -> SendResult:
        await asyncio.sleep(self.random.uniform(0, 0.01))
        self.log.append((address, reply.text))
        return SendResult(provider_id=None)

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None


async def test_two_processes_keep_each_persons_order(database: tuple[str, str | None],
                                                     clock: FixedClock) -> None:
    url, schema = database
    settings = replace(Settings.from_env({}, dotenv=None), database_url=url)
    sent: list[tuple[str, str]] = []
    first = await App.start(replace(settings, instance="one"), clock=clock, schema=schema,
                            senders={"console": SlowRecorder(sent, 1)})
    second = await App.start(replace(settings, instance="two"), clock=clock, schema=schema,
                             senders={"console": SlowRecorder(sent, 2)})
    try:
        people = [f"+336100000{n:02d}" for n in range(30)]

        def queue(conn: Any) -> None:
            for address in people:  # three replies in a row to each person, as a burst makes
                for n in range(3):
                    conn.execute(outbox.insert().values(**queue_values(
                        participant_id=None, channel="console", address=address,
                        reply=Reply(f"{n}"), now=clock())))

        await first.db.run(queue)
        stopping = asyncio.Event()
        loops = [asyncio.create_task(app.dispatcher.channels["console"].run(stopping))
                 for app in (first, second)]
        await eventually(lambda: len(sent) == 90, "every message to be sent", timeout=30)
        stopping.set()
        await asyncio.gather(*loops)
    finally:
        await first.close()
        await second.close()
    for address in people:
        assert [text for to, text in sent if to == address] == ["0", "1", "2"], address


# --- the claims of a process that stopped come back at once when it starts again -------------


async def test_a_restarted_process_releases_its_own_claims_at_once(
        tmp_path: Path, clock: FixedClock, fake_twilio: tuple[FakeTwilio, str]) -> None:
    fake, url = fake_twilio
    settings = sms_settings(f"sqlite:///{tmp_path / 'claims.db'}", url, instance="host:8080")
    async with App.open(settings, clock=clock) as app:
        await app.pipeline.handle(Inbound("sms", "+33612345678", "Bonjour",
                                          received_at=clock()))
        # The process claims the reply and dies before sending it.
        channel = app.dispatcher.channels.get("sms")
        assert channel is None  # no sender in this App: only the claim, by hand
        from bot.delivery.outbox import claim

        await app.db.run(lambda c: claim(c, "sms", "host:8080", clock()))
    sender = TwilioSender(settings)
    try:
        async with App.open(settings, clock=clock, senders={"sms": sender}) as again:
            await again.dispatcher.drain()
            assert fake.messages == []  # still claimed by the dead process
            assert await again.dispatcher.release_own_claims() == 1
            await again.dispatcher.drain()
    finally:
        await sender.close()
    assert len(fake.messages) == 1


# --- 11: a vote cast at the same instant from two channels with one number --------------------


async def test_the_losing_side_of_a_simultaneous_cross_channel_vote_is_told(
        app: App, clock: FixedClock, tmp_path: Path) -> None:
    (tmp_path / "verified.yaml").write_text(VERIFIED)
    await app.load_campaigns(tmp_path / "verified.yaml")
    codes = {p.text("fr"): p.code for p in app.pipeline.catalog.proposals.values()}
    phone = "+33611223344"

    async def say(channel: str, address: str, text: str = "", **extra: Any) -> None:
        await app.pipeline.handle(Inbound(channel, address, text, received_at=clock(),
                                          **extra))

    for text in ("Bonjour", "1", "1", "3", "31000", f"VOTE {codes['Tram']}"):
        await say("sms", phone, text)
    for text in ("Bonjour", "1", "1", "3", "31000", f"VOTE {codes['Bus']}"):
        await say("telegram", "1001", text)
    await say("telegram", "1001", contact=phone)  # shares the same, verified, number
    await say("telegram", "1001", codes["Bus"])
    # Both confirm at the same instant.
    await asyncio.gather(say("sms", phone, "1"), say("telegram", "1001", "1"))

    def read(conn: Any) -> tuple[Any, list[Any]]:
        ballot = conn.execute(select(ballots.c.participant_id, ballots.c.choices)).one()
        rows = conn.execute(select(outbox.c.participant_id, outbox.c.text)
                            .order_by(outbox.c.id)).all()
        return ballot, rows

    ballot, rows = await app.db.run(read)
    counted = "P" + ballot.choices
    told = [r for r in rows if "remplacé par celui envoyé avec votre numéro" in r.text]
    assert len(told) == 1
    assert told[0].participant_id != ballot.participant_id  # the side whose vote lost
    assert told[0].text.endswith(f"Vote retenu : {counted}.")


# --- outcomes of sends under way together share a transaction -------------------------------


class Staggered:
    """Sends that end one after another, a millisecond or two apart, as a fast channel's do."""

    channel = "console"
    rate = 0.0
    concurrency = 20

    def __init__(self) -> None:
        self.random = random.Random(5)

    async def send(self, address: str, reply: Reply) -> SendResult:
        await asyncio.sleep(self.random.uniform(0, 0.04))
        return SendResult(provider_id=f"id-{address}")

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None


async def test_outcomes_of_sends_under_way_together_share_a_transaction(
        app: App, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.delivery import dispatcher

    written: list[int] = []
    real = dispatcher.write_outcomes

    def counted(conn: Any, outcomes: list[Any]) -> None:
        written.append(len(outcomes))
        real(conn, outcomes)

    monkeypatch.setattr(dispatcher, "write_outcomes", counted)
    app.dispatcher.add_sender("console", Staggered())
    addresses = [f"+3361000{n:04d}" for n in range(60)]
    people = [await add_person(app, address, channel="console") for address in addresses]
    await app.db.run(lambda c: c.execute(outbox.insert(), [queue_values(
        participant_id=pid, channel="console", address=address, reply=Reply("Réunion jeudi."),
        now=clock(), bulk=True) for pid, address in zip(people, addresses, strict=True)]))
    await app.dispatcher.drain()
    rows = await app.db.run(lambda c: c.execute(
        select(outbox.c.address, outbox.c.status, outbox.c.provider_id)).all())
    assert sorted(rows) == [(a, "sent", f"id-{a}") for a in addresses]
    # Each waited for the others ending meanwhile: at most one commit for two messages
    # (without it: 34-43 for the 60, as the sends end 0.7 ms apart on average).
    assert sum(written) == 60 and len(written) <= 30, written
