"""What the scheduler tests share: the VILLAGE campaign, its dates, and helpers that write
participants and ballots directly (the audiences under test, without a conversation each)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bot.app import App
from bot.store.tables import ballots, campaign_events, outbox, participants

# Tuesday 10 March 2026, 11:00 in Paris (the conftest's T0).
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)

VILLAGE = """
slug: village
kind: participatory_budget
title: {fr: Budget du village, en: Village budget}
summary: {fr: Des projets pour le village.}
audience: {departements: ["31", "48"], age_brackets: ["15-17", "18-25", "26-34", "35-49", "50-64", "65+"]}
phases:
  submission: {start: "2026-03-01T00:00", end: "2026-03-09T00:00"}
  vote: {start: "2026-03-10T08:00", end: "2026-03-20T18:00"}
  results: {start: "2026-03-21T09:00"}
ballot: {method: up_to, max_choices: 2}
seed_proposals:
  - {ref: bancs, title: {fr: Bancs publics, en: Public benches}}
  - {ref: jeux, title: {fr: Aire de jeux, en: Playground}}
  - {ref: lampes, title: {fr: Éclairage solaire, en: Solar lights}}
"""
# Paris times: vote opens Tue 10 March 08:00, the default "vote-closing" reminder is due
# Wed 18 March 18:00 (vote.end - 2d), results Sat 21 March 09:00.
VOTE_END = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
CLOSING_DUE = datetime(2026, 3, 18, 17, 0, tzinfo=UTC)
RESULTS_DUE = datetime(2026, 3, 21, 8, 0, tzinfo=UTC)


def write(folder: Path, text: str, name: str = "village.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


async def add_person(app: App, address: str, *, channel: str = "sms", locale: str = "fr",
                     dep: str = "31", age: str = "18-25", consent: bool = True,
                     status: str = "active", reminders: bool = True) -> int:
    def insert_one(conn: Any) -> int:
        return int(conn.execute(insert(participants).values(
            channel=channel, address=address, locale=locale, status=status,
            consent_at=T0 - timedelta(days=30) if consent else None, age_bracket=age,
            departement=dep, postal_code=f"{dep}000", created_at=T0 - timedelta(days=30),
            reminders=reminders, phone=address if channel == "sms" else None,
        ).returning(participants.c.id)).scalar_one())

    return int(await app.db.run(insert_one))


async def cast(app: App, pid: int, codes: list[int], dep: str = "31") -> None:
    campaign = app.pipeline.catalog.by_slug("village")
    assert campaign is not None

    def insert_one(conn: Any) -> None:
        conn.execute(insert(ballots).values(
            campaign_id=campaign.id, participant_id=pid, choices=",".join(map(str, codes)),
            age_bracket="18-25", departement=dep, created_at=T0, updated_at=T0,
            voter=f"participant:{pid}"))

    await app.db.run(insert_one)


async def rows(app: App, key_like: str = "%") -> list[Any]:
    return await app.db.run(lambda conn: conn.execute(
        select(outbox.c.participant_id, outbox.c.address, outbox.c.channel, outbox.c.text,
               outbox.c.status, outbox.c.next_attempt_at, outbox.c.bulk,
               outbox.c.idempotency_key)
        .where(outbox.c.idempotency_key.like(key_like)).order_by(outbox.c.id)).all())


async def event_row(app: App, event: str) -> Any:
    return await app.db.run(lambda conn: conn.execute(
        select(campaign_events).where(campaign_events.c.event == event)).one())


def proposal_ids(app: App) -> list[int]:
    campaign = app.pipeline.catalog.by_slug("village")
    assert campaign is not None
    return [p.id for p in app.pipeline.catalog.published(campaign.id)]


def slow_queueing(monkeypatch: Any, seconds: float) -> None:
    """Make each event's queueing hold its transaction `seconds` longer on PostgreSQL, as a
    large audience does (to let another process meet it half-way)."""
    from bot.scheduling import events

    real = events.queue_audience

    def slow(conn: Any, **kwargs: Any) -> int:
        queued = real(conn, **kwargs)
        conn.exec_driver_sql(f"SELECT pg_sleep({seconds})")
        return queued

    monkeypatch.setattr(events, "queue_audience", slow)
