"""The outbox: every message to send is a row with a documented status lifecycle.

    queued ──claim──> sending ──ok──> sent ──(provider callback)──> delivered
       ^                 │                                      └─> failed
       └──transient──────┤
                         └──permanent / too many attempts──> failed
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, func, select, update

from bot.channels.base import DeliveryReport, DeliveryState, Reply, ReplyChoice
from bot.store.repo import set_participant_status
from bot.store.tables import outbox

MAX_ATTEMPTS = 6
SENDING_TIMEOUT = timedelta(minutes=5)  # a claim older than this is considered lost


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    participant_id: int | None
    channel: str
    address: str
    reply: Reply
    attempts: int


def encode_choices(choices: Sequence[ReplyChoice], footer: str = "", turn: int = 0,
                   ask_contact: str = "") -> str:
    """Choices (and the footer under them, the turn, a contact request) for the outbox row."""
    return json.dumps({"choices": [[c.id, c.key, c.label, c.code] for c in choices],
                       "footer": footer,
                       "turn": turn, "contact": ask_contact}, ensure_ascii=False)


def decode_reply(text: str, body: str) -> Reply:
    raw = json.loads(text)
    if isinstance(raw, list):  # rows queued before footers existed
        raw = {"choices": raw, "footer": ""}
    choices = tuple(ReplyChoice(*choice) for choice in raw["choices"])
    return Reply(body, choices, raw["footer"], raw.get("turn", 0), raw.get("contact", ""))


def queue_values(
    *,
    participant_id: int | None,
    channel: str,
    address: str,
    reply: Reply,
    now: datetime,
    idempotency_key: str | None = None,
) -> dict[str, object]:
    return {
        "participant_id": participant_id,
        "channel": channel,
        "address": address,
        "text": reply.text,
        "choices": encode_choices(reply.choices, reply.footer, reply.turn, reply.ask_contact),
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "idempotency_key": idempotency_key,
        "created_at": now,
        "updated_at": now,
    }


_RECLAIM = update(outbox).where(
    outbox.c.status == OutboxStatus.SENDING.value,
    outbox.c.channel.in_(bindparam("channels", expanding=True)),
    outbox.c.updated_at < bindparam("stale"),
).values(status=OutboxStatus.QUEUED.value)
_DUE = (
    select(outbox.c.id)
    .where(outbox.c.status == OutboxStatus.QUEUED.value,
           outbox.c.channel.in_(bindparam("channels", expanding=True)),
           outbox.c.next_attempt_at <= bindparam("now"))
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
)


def _claim_statement(due: Select[tuple[int]]) -> Any:
    return (
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(status=OutboxStatus.SENDING.value, attempts=outbox.c.attempts + 1,
                updated_at=bindparam("now"))
        .returning(outbox.c.id, outbox.c.participant_id, outbox.c.channel, outbox.c.address,
                   outbox.c.text, outbox.c.choices, outbox.c.attempts)
    )


_CLAIM = {
    "sqlite": _claim_statement(_DUE),
    "postgresql": _claim_statement(_DUE.with_for_update(skip_locked=True)),
}


def claim(conn: Connection, channels: Sequence[str], now: datetime, *, limit: int = 50
          ) -> list[OutboxItem]:
    """Mark up to `limit` due rows as sending and return them (SKIP LOCKED on PostgreSQL).

    Claims a dead process never finished come back first; both statements use the
    (status, channel, next_attempt_at) index, so the sent history does not slow them down.
    """
    conn.execute(_RECLAIM, {"channels": list(channels), "stale": now - SENDING_TIMEOUT})
    rows = conn.execute(_CLAIM[conn.dialect.name],
                        {"channels": list(channels), "now": now, "limit": limit}).all()
    items = [
        OutboxItem(r.id, r.participant_id, r.channel, r.address,
                   decode_reply(r.choices, r.text), r.attempts)
        for r in rows
    ]
    items.sort(key=lambda item: item.id)
    return items


# Built once: these run for every message sent.
_SENT = update(outbox).where(outbox.c.id == bindparam("item_id")).values(
    status=OutboxStatus.SENT.value, provider_id=bindparam("provider_id"),
    updated_at=bindparam("now"))
_FAREWELL_GONE = delete(outbox).where(
    outbox.c.id == bindparam("item_id"), outbox.c.participant_id.is_(None),
    outbox.c.idempotency_key.is_(None))


def mark_all_sent(conn: Connection, sent: Sequence[tuple[int, str | None]],
                  now: datetime) -> None:
    """Record successful sends (one statement for the batch)."""
    if not sent:
        return
    params = [{"item_id": i, "provider_id": p, "now": now} for i, p in sent]
    conn.execute(_SENT, params)
    # A farewell to someone who was just erased keeps nothing once it has left.
    conn.execute(_FAREWELL_GONE, params)


def mark_retry(conn: Connection, item: OutboxItem, reason: str, now: datetime,
               retry_after: float | None = None) -> OutboxStatus:
    """Queue again with exponential backoff, or fail after MAX_ATTEMPTS."""
    if item.attempts >= MAX_ATTEMPTS:
        return mark_failed(conn, item.id, f"gave up after {item.attempts} attempts: {reason}",
                           now)
    delay = retry_after if retry_after is not None else min(2 ** item.attempts, 300)
    conn.execute(update(outbox).where(outbox.c.id == item.id).values(
        status=OutboxStatus.QUEUED.value, failure_reason=reason[:255],
        next_attempt_at=now + timedelta(seconds=delay), updated_at=now))
    return OutboxStatus.QUEUED


def mark_failed(conn: Connection, item_id: int, reason: str, now: datetime) -> OutboxStatus:
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(
        status=OutboxStatus.FAILED.value, failure_reason=reason[:255], updated_at=now))
    return OutboxStatus.FAILED


_REPORTED = {
    DeliveryState.DELIVERED: OutboxStatus.DELIVERED,
    DeliveryState.FAILED: OutboxStatus.FAILED,
}


def apply_delivery_report(conn: Connection, report: DeliveryReport, now: datetime) -> bool:
    """A provider's delivery report: move a sent row to delivered or failed (never
    backwards), and apply what it says about the person. False when no row has that
    provider id.
    """
    row = conn.execute(select(outbox.c.id, outbox.c.status, outbox.c.participant_id)
                       .where(outbox.c.provider_id == report.provider_id)).first()
    if row is None:
        return False
    target = _REPORTED.get(report.state)
    if target is None or row.status in (OutboxStatus.DELIVERED, OutboxStatus.FAILED):
        return True
    values: dict[str, object] = {"status": target.value, "updated_at": now}
    if target is OutboxStatus.FAILED:
        values["failure_reason"] = (report.reason or "provider failed")[:255]
    conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
    if report.participant_status is not None and row.participant_id is not None:
        set_participant_status(conn, row.participant_id, report.participant_status)
    return True


def count_by_status(conn: Connection) -> dict[str, int]:
    """How many rows the outbox holds in each status (for /metrics)."""
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: n for status, n in rows}
