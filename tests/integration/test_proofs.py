"""Proofs that prove: each test here fails when the guarantee it names is taken away.

- the participant row locked FOR UPDATE on PostgreSQL: a double press from two processes at
  the same instant says "A voté" once (and, an expected failure until the lock also guards
  the state that is read, is answered as two presses in a row are);
- Telegram's `retry_after` (429) through the real Telegram sender: the reply waits exactly
  that long, then leaves;
- a Telegram update delivered twice (webhook posted again, getUpdates after an unconfirmed
  offset) is processed once: one reply, one state change.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.base import Inbound
from bot.channels.telegram import TelegramReceiver, TelegramSender, UpdatesNotStored, make_bot
from bot.config import Settings
from bot.delivery.outbox import OutboxStatus
from bot.store.tables import ballots, conversations, inbound_seen, outbox, participants
from bot.testing.fake_telegram import TOKEN, FakeTelegram
from tests.conftest import CAMPAIGNS, FixedClock, RecordingSender, code_of
from tests.integration import test_telegram
from tests.integration.test_storage import second_app
from tests.integration.test_telegram import ANNE, Telegram, onboard

tg = test_telegram.tg  # the Telegram fixture (polling and webhook) of test_telegram.py

POSTGRES_ONLY = pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


# --- 1. the participant lock on PostgreSQL -------------------------------------------------

PEOPLE = 20  # pairs of simultaneous presses: one overlap is enough to show a missing lock


async def _press_twice(app: App, sender: RecordingSender, clock: FixedClock,
                       schema: str | None) -> tuple[list[str], dict[str, list[str]]]:
    """People on Telegram about to confirm their vote each press "Valider" twice.

    Returns the replies of one person pressing twice in sequence, and, for each of
    `PEOPLE` others, the replies queued when both presses are handled at the same instant
    by two processes (two `App`s on the same schema: the in-process per-conversation lock
    does not serialise them, only the database can)."""
    garden = code_of(app, "Jardin partagé")

    async def ready(address: str) -> tuple[Inbound, Inbound]:
        for text in ("bonjour", "1", "1", "3", "31000"):
            await app.pipeline.handle(Inbound("telegram", address, text, received_at=clock()))
        handled = await app.pipeline.handle(Inbound("telegram", address, f"VOTE {garden}",
                                                    received_at=clock()))
        confirm = handled.reply
        assert confirm is not None and confirm.text.startswith(f"Votre vote :\n{garden}")
        valider = next(c for c in confirm.choices if c.label == "Valider")

        def tap(n: int) -> Inbound:  # two taps on one button: two updates, one turn and choice
            return Inbound("telegram", address, "", choice=valider.id, turn=confirm.turn,
                           provider_id=f"{address}-{n}", received_at=clock())

        return tap(1), tap(2)

    async def replies_after(address: str, before: int) -> list[str]:
        rows = await app.db.run(lambda c: c.execute(
            select(outbox.c.text).where(outbox.c.address == address, outbox.c.id > before)
            .order_by(outbox.c.id)).scalars().all())
        return list(rows)

    async def last_row() -> int:
        return int(await app.db.run(lambda c: c.execute(
            select(outbox.c.id).order_by(outbox.c.id.desc()).limit(1)).scalar_one()))

    first, second = await ready("9000")
    before = await last_row()
    await app.pipeline.handle(first)
    await app.pipeline.handle(second)
    sequential = await replies_after("9000", before)

    presses = {str(9001 + n): await ready(str(9001 + n)) for n in range(PEOPLE)}
    before = await last_row()
    other = await second_app(app, sender, clock, schema)
    try:
        await asyncio.gather(*(handle for a, b in presses.values()
                               for handle in (app.pipeline.handle(a), other.pipeline.handle(b))))
    finally:
        await other.close()
    concurrent = {address: await replies_after(address, before) for address in presses}
    counted = await app.db.run(lambda c: c.execute(
        select(participants.c.address).join(ballots, ballots.c.participant_id == participants.c.id)
    ).scalars().all())
    assert Counter(counted) == Counter([*presses, "9000"])  # one ballot each (the upsert)
    return sequential, concurrent


def _kind(text: str) -> str:
    return text.split(" :")[0].split("\n")[0]


@POSTGRES_ONLY
async def test_a_double_press_from_two_processes_records_one_receipt(
    app: App, sender: RecordingSender, clock: FixedClock, database: tuple[str, str | None]
) -> None:
    """The participant row is locked: the second press waits for the first one's commit and
    sees its ballot, so the person is told "A voté" once, never twice (today the second
    answer is "Vote modifié": see the expected failure below). The ballot upsert keeps one
    ballot with or without the lock, so counting ballots proves nothing."""
    sequential, concurrent = await _press_twice(app, sender, clock, database[1])
    # The second press is a stale button: answered by a short notice, nothing queued.
    assert [_kind(t) for t in sequential] == ["A voté"]
    twice = [address for address, texts in concurrent.items()
             if [_kind(t) for t in texts].count("A voté") != 1]
    assert twice == [], (f"{len(twice)} of {PEOPLE} people were told 'A voté' twice",
                         concurrent[twice[0]])
    assert all(len(texts) == 1 for texts in concurrent.values()), concurrent


@POSTGRES_ONLY
async def test_a_double_press_from_two_processes_is_answered_as_in_sequence(
    app: App, sender: RecordingSender, clock: FixedClock, database: tuple[str, str | None]
) -> None:
    """Two simultaneous presses get exactly the answers two presses in a row get."""
    sequential, concurrent = await _press_twice(app, sender, clock, database[1])
    expected = sorted(_kind(t) for t in sequential)
    differ = {address: sorted(_kind(t) for t in texts)
              for address, texts in concurrent.items() if sorted(map(_kind, texts)) != expected}
    assert differ == {}, f"{len(differ)} of {PEOPLE} differ from {expected}"


# --- 2. Telegram's retry_after through the real sender -------------------------------------


@pytest.fixture
async def telegram_app(database: tuple[str, str | None], clock: FixedClock,
                       fake_telegram: tuple[FakeTelegram, str]) -> AsyncIterator[App]:
    """The app whose only sender is the real `TelegramSender`, talking to the fake Bot API."""
    _, url = fake_telegram
    db_url, schema = database
    settings = replace(Settings.from_env({}, dotenv=None), database_url=db_url,
                       telegram_token=TOKEN, telegram_api_url=url,
                       contact="participation@example.org")
    bot = make_bot(settings)
    await bot.initialize()
    sender = TelegramSender(bot, rate=0, per_chat_interval=0)
    try:
        async with App.open(settings, senders={"telegram": sender}, clock=clock,
                            schema=schema) as application:
            await application.load_campaigns(CAMPAIGNS)
            yield application
    finally:
        await sender.close()


async def test_telegram_retry_after_is_the_wait_before_the_next_attempt(
    telegram_app: App, clock: FixedClock, fake_telegram: tuple[FakeTelegram, str]
) -> None:
    app, (fake, _) = telegram_app, fake_telegram
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", {"retry_after": 7})
    await app.pipeline.handle(Inbound(channel="telegram", address=str(ANNE), text="bonjour",
                                      received_at=clock()))
    queued_at = clock()
    await app.dispatcher.drain()
    assert [c.method for c in fake.calls if c.method.startswith("sendMessage")] == [
        "sendMessage!failed"]

    def row(conn):  # type: ignore[no-untyped-def]
        return conn.execute(select(outbox)).mappings().one()

    first = await app.db.run(row)
    assert (first["status"], first["attempts"], first["failure_reason"]) == (
        OutboxStatus.QUEUED, 1, "telegram 429 retry after 7s")
    assert first["next_attempt_at"] == queued_at + timedelta(seconds=7)
    clock.advance(seconds=6.999)
    await app.dispatcher.drain()
    assert fake.sent(ANNE) == [], "sent before Telegram's retry_after"
    clock.advance(seconds=0.001)
    await app.dispatcher.drain()
    assert [c.text.split("\n")[0][:24] for c in fake.sent(ANNE)] == ["Bonjour ! Avec Votz, pro"]
    sent = await app.db.run(row)
    assert (sent["status"], sent["attempts"]) == (OutboxStatus.SENT, 2)


# --- 3. a re-delivered Telegram update is processed once -----------------------------------


async def _state(tg: Telegram, user: int = ANNE) -> tuple[str, int]:
    """(step, turn) of the person's conversation: each handled message moves the turn."""
    row = await tg.app.db.run(lambda c: c.execute(
        select(conversations.c.step, conversations.c.data)
        .join(participants, participants.c.id == conversations.c.participant_id)
        .where(participants.c.channel == "telegram", participants.c.address == str(user))
    ).one())
    return row.step, int(json.loads(row.data)["_t"])


async def _seen(tg: Telegram, update: dict[str, object]) -> int:
    return len(await tg.app.db.run(lambda c: c.execute(select(inbound_seen).where(
        inbound_seen.c.channel == "telegram",
        inbound_seen.c.provider_id == str(update["update_id"]))).all()))


async def _post(tg: Telegram, update: dict[str, object]) -> int:
    response = await tg.client.post(
        "/telegram/webhook", json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": tg.fake.webhook["secret"]})
    return response.status_code


async def _ready(tg: Telegram) -> tuple[str, int, int]:
    """Anne onboarded: (the garden's code, her turn, how many messages she got so far)."""
    await onboard(tg)
    _, turn = await _state(tg)
    return code_of(tg.app, "Jardin partagé"), turn, len(tg.fake.sent(ANNE))


async def _outcome(tg: Telegram, before: int) -> tuple[list[str], int]:
    """What Anne got since `before` (first lines) and her conversation's turn."""
    await tg.app.dispatcher.drain()
    return [c.text.split("\n")[0] for c in tg.fake.sent(ANNE)[before:]], (await _state(tg))[1]


WEBHOOK = pytest.mark.parametrize("tg", ["webhook"], indirect=True)
POLLING = pytest.mark.parametrize("tg", ["polling"], indirect=True)


@WEBHOOK
async def test_a_webhook_update_posted_again_after_it_was_handled_is_processed_once(
    tg: Telegram,
) -> None:
    """Telegram posts an update again when its first post got no 200 in time."""
    garden, turn, before = await _ready(tg)
    update = tg.fake.says(ANNE, f"VOTE {garden}")
    await tg.deliver()
    assert await _post(tg, update) == 200  # answered as stored: Telegram stops posting it
    assert await _outcome(tg, before) == (["Votre vote :"], turn + 1)
    assert await _seen(tg, update) == 1


@WEBHOOK
async def test_a_webhook_update_posted_again_while_it_is_handled_is_processed_once(
    tg: Telegram,
) -> None:
    garden, turn, before = await _ready(tg)
    update = tg.fake.says(ANNE, f"VOTE {garden}")
    _, status = await asyncio.gather(tg.deliver(), _post(tg, update))
    assert status == 200
    assert await _outcome(tg, before) == (["Votre vote :"], turn + 1)
    assert await _seen(tg, update) == 1


@POLLING
async def test_a_polled_batch_fetched_again_after_a_failure_is_processed_once(
    tg: Telegram,
) -> None:
    """The first update of a batch is not stored: the offset stays before it, so the next
    getUpdates brings the whole batch again, Anne's stored update included."""
    garden, turn, before = await _ready(tg)
    handle = tg.receiver.handle
    refused: list[str] = []

    async def database_refuses_bob_once(inbound: Inbound) -> object:
        if inbound.address == "2002" and not refused:
            refused.append(inbound.text)
            raise ConnectionError("the database is unreachable")
        return await handle(inbound)

    tg.receiver.handle = database_refuses_bob_once
    tg.fake.says(2002, "/start")
    update = tg.fake.says(ANNE, f"VOTE {garden}")
    with pytest.raises(UpdatesNotStored):
        await tg.receiver.poll_once()
    assert await tg.receiver.poll_once() == 2  # both again: Anne's was not confirmed
    assert refused == ["START"]
    assert await _outcome(tg, before) == (["Votre vote :"], turn + 1)
    assert len(tg.fake.sent(2002)) == 1  # Bob's, stored the second time
    assert await _seen(tg, update) == 1


@POLLING
async def test_updates_never_confirmed_before_a_restart_are_processed_once(
    tg: Telegram,
) -> None:
    """Telegram confirms an offset only at the next getUpdates: a process that stops
    after handling a batch leaves it unconfirmed, and the next process gets it again."""
    garden, turn, before = await _ready(tg)
    update = tg.fake.says(ANNE, f"VOTE {garden}")
    assert await tg.receiver.poll_once() == 1
    restarted = TelegramReceiver(tg.receiver.bot, tg.receiver.settings, tg.receiver.handle,
                                 tg.receiver.i18n, tg.receiver.clock)
    assert await restarted.poll_once() == 1  # the same update, fetched again
    assert await _outcome(tg, before) == (["Votre vote :"], turn + 1)
    assert await _seen(tg, update) == 1
