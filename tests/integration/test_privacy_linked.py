"""One person on two channels (their SMS number, the same number shared on Telegram) is one
person for GDPR requests: an export shows both accounts, an erasure forgets both. Runs on
SQLite and PostgreSQL (the `app` fixture)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from bot.app import App
from bot.channels.base import Inbound, Reply
from bot.delivery.outbox import queue_values
from bot.staff import privacy
from bot.store.tables import outbox, participants
from tests.conftest import FixedClock

PHONE = "+33612345678"


async def people(app: App, now: datetime) -> dict[str, int]:
    """The person by SMS, the same person on Telegram (number shared), someone else on
    Telegram; each with a message queued to them."""

    def add(conn: Connection) -> dict[str, int]:
        ids = {}
        for name, channel, address, phone in (("sms", "sms", PHONE, PHONE),
                                               ("telegram", "telegram", "4242", PHONE),
                                               ("other", "telegram", "4343", None)):
            ids[name] = conn.execute(insert(participants).values(
                channel=channel, address=address, locale="fr", status="active",
                consent_at=now, age_bracket="18-25", departement="31", created_at=now,
                phone=phone).returning(participants.c.id)).scalar_one()
            conn.execute(insert(outbox).values(**queue_values(
                participant_id=ids[name], channel=channel, address=address,
                reply=Reply(f"pour {name}"), now=now)))
        return ids

    return await app.db.run(add)


async def test_export_shows_the_account_sharing_the_verified_number(
        app: App, clock: FixedClock) -> None:
    ids = await people(app, clock())
    found = await privacy.export(app.db, "sms", "06 12 34 56 78")
    assert found is not None
    assert found["participant"]["id"] == ids["sms"]
    assert [a["participant"]["id"] for a in found["other_accounts"]] == [ids["telegram"]]
    assert found["other_accounts"][0]["participant"]["phone"] == PHONE
    alone = await privacy.export(app.db, "telegram", "4343")
    assert alone is not None and alone["other_accounts"] == []


async def test_erasure_forgets_every_account_of_the_number(
        app: App, clock: FixedClock) -> None:
    ids = await people(app, clock())
    assert await privacy.erase(app.db, "sms", "06 12 34 56 78", clock())

    def left(conn: Connection) -> tuple[list[int], list[str]]:
        return (list(conn.execute(select(participants.c.id)).scalars()),
                list(conn.execute(select(outbox.c.address)).scalars()))

    assert await app.db.run(left) == ([ids["other"]], ["4343"])


async def test_someone_under_15_answering_by_sms_leaves_the_numbers_other_account(
        app: App, clock: FixedClock) -> None:
    """"Moins de 15 ans" forgets what this conversation stored, on this account only: a
    Telegram account that shared the same number (a parent's, say) is not theirs to erase."""
    now = clock()

    def telegram_account(conn: Connection) -> int:
        return conn.execute(insert(participants).values(
            channel="telegram", address="4242", locale="fr", status="active", consent_at=now,
            age_bracket="35-49", departement="31", created_at=now, phone=PHONE,
        ).returning(participants.c.id)).scalar_one()

    parent = await app.db.run(telegram_account)
    for n, text in enumerate(("Bonjour", "1", "1", "1"), 1):  # language, consent, under 15
        await app.handle(Inbound("sms", PHONE, text, provider_id=f"SM{n}", received_at=now))

    def accounts(conn: Connection) -> list[tuple[str, object]]:
        return [tuple(r) for r in conn.execute(
            select(participants.c.channel, participants.c.consent_at)
            .order_by(participants.c.id))]

    stored = await app.db.run(accounts)
    assert stored[0] == ("telegram", now) and parent
    assert stored[1:] == [("sms", None)]  # only what a first message leaves
