"""The outbox: every message to send is a row with a documented status lifecycle.

    queued ──claim──> sending ──ok──> sent ──(provider callback)──> delivered
       ^  │              │                                      └─> failed
       │  │              ├──transient (429, 5xx, timeout): again later, with backoff
       └──┼──────────────┤  released: the claiming process stopped or died before sending
          │              └──permanent / too many attempts / outcome unknown──> failed
          ├──the person stopped (STOP, blocked, opted out) before it left──> failed
          └──staff cancelled its broadcast before it left──> cancelled

A row is claimed by one process (`claimed_by`, its instance name) and recorded as soon as
its send ends; a process releases its own claims when it starts again, another takes them
back after `LEASE`. Only the oldest pending row of an address can be claimed, so one
person's messages leave in order whichever process sends them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)

from bot.channels.base import DeliveryReport, DeliveryState, Reply, ReplyChoice
from bot.domain.participants import Status
from bot.store.repo import NOT_SENT_STOPPED, set_participant_status
from bot.store.tables import UTCDateTime, outbox, participants

MAX_ATTEMPTS = 6


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    participant_id: int | None
    channel: str
    address: str
    reply: Reply
    attempts: int


def encode_choices(choices: Sequence[ReplyChoice], footer: str = "", turn: int = 0,
                   ask_contact: str = "", edit: str = "", clears: str = "") -> str:
    """Choices (and the footer under them, the turn, a contact request, the message it
    replaces in place, the pressed message whose buttons go first) for the outbox row."""
    raw = {"choices": [[c.id, c.key, c.label, c.code] for c in choices], "footer": footer,
           "turn": turn, "contact": ask_contact}
    if edit:
        raw["edit"] = edit
    if clears:
        raw["clears"] = clears
    return json.dumps(raw, ensure_ascii=False)


def decode_reply(text: str, body: str, *, bulk: bool = False) -> Reply:
    raw = json.loads(text)
    if isinstance(raw, list):  # rows queued before footers existed
        raw = {"choices": raw, "footer": ""}
    choices = tuple(ReplyChoice(*choice) for choice in raw["choices"])
    return Reply(body, choices, raw["footer"], raw.get("turn", 0), raw.get("contact", ""),
                 bulk=bool(bulk), edit=str(raw.get("edit", "")),
                 clears=str(raw.get("clears", "")))


def queue_values(
    *,
    participant_id: int | None,
    channel: str,
    address: str,
    reply: Reply,
    now: datetime,
    idempotency_key: str | None = None,
    unconditional: bool = False,
    bulk: bool = False,
    not_before: datetime | None = None,
) -> dict[str, object]:
    """An outbox row; `bulk` for what is not an answer to the person (held outside the
    channel's sending window: `not_before` is when that window opens)."""
    return {
        "participant_id": participant_id,
        "channel": channel,
        "address": address,
        "text": reply.text,
        "choices": encode_choices(reply.choices, reply.footer, reply.turn, reply.ask_contact,
                                  reply.edit, reply.clears),
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "idempotency_key": idempotency_key,
        "created_at": now,
        "updated_at": now,
        "unconditional": unconditional,
        "bulk": bulk,
    }


LEASE = timedelta(minutes=2)  # another process's claim older than this is taken as lost
_QUEUED, _SENDING = OutboxStatus.QUEUED.value, OutboxStatus.SENDING.value
_earlier = outbox.alias("earlier")
# Written as literals, not parameters: only then may SQLite use the partial index on pending
# rows (ix_outbox_pending_person, WHERE status IN ('queued', 'sending')); with parameters it
# scans every row for each candidate (130 ms a claim with 1,300 rows, measured).
_PENDING_LITERALS: tuple[ColumnElement[str], ...] = (
    literal_column(f"'{_QUEUED}'"), literal_column(f"'{_SENDING}'"))

# A claim whose process died: back in the queue once its lease is over.
_RECLAIM = update(outbox).where(
    outbox.c.status == _SENDING,
    outbox.c.channel == bindparam("for_channel"),
    outbox.c.updated_at < bindparam("expired"),
).values(status=_QUEUED, claimed_by=None)
# Queued before the person stopped (or was blocked): never sent.
_CANCEL_STOPPED = update(outbox).where(outbox.c.id.in_(
    select(outbox.c.id)
    .join(participants, participants.c.id == outbox.c.participant_id)
    .where(outbox.c.status == _QUEUED, outbox.c.channel == bindparam("for_channel"),
           outbox.c.next_attempt_at <= bindparam("now"),
           participants.c.status != Status.ACTIVE.value,
           outbox.c.unconditional.is_(False))
    .limit(100).scalar_subquery()
)).values(status=OutboxStatus.FAILED.value, failure_reason=NOT_SENT_STOPPED,
          updated_at=bindparam("now"))
# The same on SQLite, walked from the few who stopped (the partial index of inactive people,
# then each one's rows), not from the queue: with a broadcast of 500,000 queued, SQLite's
# planner walked the queue, 0.3 s every sweep on the dispatcher's one connection (5-20 ms
# this way with 500 people stopped). CROSS JOIN is how SQLite is told the order.
_CANCEL_STOPPED_SQLITE = text(f"""
    UPDATE outbox SET status = '{OutboxStatus.FAILED.value}', failure_reason = :reason,
                      updated_at = :now
    WHERE id IN (SELECT outbox.id FROM participants CROSS JOIN outbox
                 WHERE participants.status <> '{Status.ACTIVE.value}'
                   AND outbox.participant_id = participants.id
                   AND outbox.status = '{_QUEUED}' AND outbox.channel = :for_channel
                   AND outbox.next_attempt_at <= :now AND outbox.unconditional = 0
                 LIMIT 100)""").bindparams(bindparam("now", type_=UTCDateTime()),
                                           reason=NOT_SENT_STOPPED)
# Due rows, at most one per person: the oldest not yet sent, so replies keep their order
# whichever process sends them (a later row waits while an earlier one is queued or sending).
# Replies are claimed before bulk rows (announcements, reminders, broadcasts), and a bulk row
# never holds up a reply to the same person: a backlog of 200,000 reminders, draining at the
# provider's pace for hours, delays no answer. Bulk rows are claimed only while the channel's
# sending window is open.
def _due(*, replies: bool) -> Select[tuple[int]]:
    if replies:
        takes = outbox.c.bulk == false()
        holds: ColumnElement[bool] = _earlier.c.bulk == false()
    else:
        takes = outbox.c.bulk == true()
        holds = true()
    return (
        select(outbox.c.id)
        .where(outbox.c.status == _QUEUED,
               outbox.c.channel == bindparam("for_channel"),
               takes,
               outbox.c.next_attempt_at <= bindparam("now"),
               or_(outbox.c.unconditional.is_(True),
                   ~exists().where(participants.c.id == outbox.c.participant_id,
                                   participants.c.status != Status.ACTIVE.value)),
               ~exists().where(_earlier.c.channel == outbox.c.channel,
                               _earlier.c.address == outbox.c.address,
                               _earlier.c.id < outbox.c.id,
                               _earlier.c.status.in_(_PENDING_LITERALS),
                               holds))
        .order_by(outbox.c.id)
        .limit(bindparam("limit"))
    )


def _claim_statement(due: Select[tuple[int]]) -> Any:
    return (
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(status=_SENDING, attempts=outbox.c.attempts + 1,
                claimed_by=bindparam("claimer"), updated_at=bindparam("now"))
        .returning(outbox.c.id, outbox.c.participant_id, outbox.c.channel, outbox.c.address,
                   outbox.c.text, outbox.c.choices, outbox.c.attempts, outbox.c.bulk)
    )


_CLAIM = {
    (dialect, replies): _claim_statement(
        _due(replies=replies).with_for_update(skip_locked=True) if dialect == "postgresql"
        else _due(replies=replies))
    for dialect in ("sqlite", "postgresql") for replies in (True, False)
}


def claim(conn: Connection, channel: str, instance: str, now: datetime, *, limit: int = 20,
          bulk_ok: bool = True) -> list[OutboxItem]:
    """Mark up to `limit` due rows of `channel` as sent by `instance` and return them.

    Claims whose lease ran out come back first; rows of people who stopped are skipped; on
    PostgreSQL, rows another process is claiming are skipped (SKIP LOCKED). Without
    `bulk_ok` (the channel's sending window is closed), only replies are taken.
    """
    conn.execute(_RECLAIM, {"for_channel": channel, "expired": now - LEASE})
    params = {"for_channel": channel, "claimer": instance, "now": now, "limit": limit}
    rows = list(conn.execute(_CLAIM[conn.dialect.name, True], params).all())
    if bulk_ok and len(rows) < limit:
        rows += conn.execute(_CLAIM[conn.dialect.name, False],
                             {**params, "limit": limit - len(rows)}).all()
    items = [
        OutboxItem(r.id, r.participant_id, r.channel, r.address,
                   decode_reply(r.choices, r.text, bulk=r.bulk), r.attempts)
        for r in rows
    ]
    items.sort(key=lambda item: item.id)
    return items


def cancel_stopped(conn: Connection, channel: str, now: datetime) -> int:
    """Fail the due rows of people who stopped (up to 100): a safety net, for rows queued in
    a transaction that read the person's status before their STOP committed."""
    statement = _CANCEL_STOPPED_SQLITE if conn.dialect.name == "sqlite" else _CANCEL_STOPPED
    return conn.execute(statement, {"for_channel": channel, "now": now}).rowcount or 0


def release_claims(conn: Connection, instance: str, ids: Sequence[int] | None = None) -> int:
    """Give back claims of `instance` (those in `ids`, or all): the process that made them
    stopped before sending them, or died (a restart releases what it held)."""
    stmt = update(outbox).where(outbox.c.status == _SENDING, outbox.c.claimed_by == instance)
    if ids is not None:
        stmt = stmt.where(outbox.c.id.in_(list(ids)))
    return conn.execute(stmt.values(status=_QUEUED, claimed_by=None)).rowcount or 0


# Built once: these run for every message sent.
_SENT = update(outbox).where(outbox.c.id == bindparam("item_id")).values(
    status=OutboxStatus.SENT.value, provider_id=bindparam("provider_id"), claimed_by=None,
    updated_at=bindparam("now"))
_FAREWELL_GONE = delete(outbox).where(
    outbox.c.id == bindparam("item_id"), outbox.c.participant_id.is_(None),
    outbox.c.idempotency_key.is_(None))


@dataclass(frozen=True, slots=True)
class Sent:
    """A send the provider accepted, to record."""

    item_id: int
    provider_id: str | None
    at: datetime


def mark_sent(conn: Connection, item_id: int, provider_id: str | None,
              now: datetime) -> None:
    """Record one successful send."""
    mark_all_sent(conn, [Sent(item_id, provider_id, now)])


# PostgreSQL: one statement for all of them, not one per row as `executemany` makes it. Each
# statement fires the broadcast counts' statement-level triggers once (migration 0006): at
# 1,000 messages a second, one writer committing row by row fell behind the sends.
_SENT_PG = text("""
    UPDATE outbox SET status = :sent, provider_id = v.provider_id, claimed_by = NULL,
                      updated_at = v.at
    FROM unnest(CAST(:ids AS BIGINT[]), CAST(:provider_ids AS TEXT[]),
                CAST(:ats AS TIMESTAMPTZ[])) AS v(id, provider_id, at)
    WHERE outbox.id = v.id
""")
_FAREWELL_GONE_PG = text("""
    DELETE FROM outbox WHERE id = ANY(CAST(:ids AS BIGINT[]))
                         AND participant_id IS NULL AND idempotency_key IS NULL
""")


def mark_all_sent(conn: Connection, sent: Sequence[Sent]) -> None:
    """Record successful sends (PostgreSQL: two statements for all of them; SQLite: two
    `executemany`, which run in the process)."""
    if not sent:
        return
    if conn.dialect.name == "postgresql":
        ids = [s.item_id for s in sent]
        conn.execute(_SENT_PG, {"sent": OutboxStatus.SENT.value, "ids": ids,
                                "provider_ids": [s.provider_id for s in sent],
                                "ats": [s.at for s in sent]})
        conn.execute(_FAREWELL_GONE_PG, {"ids": ids})
        return
    params = [{"item_id": s.item_id, "provider_id": s.provider_id, "now": s.at} for s in sent]
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
        status=OutboxStatus.QUEUED.value, failure_reason=reason[:255], claimed_by=None,
        next_attempt_at=now + timedelta(seconds=delay), updated_at=now))
    return OutboxStatus.QUEUED


def mark_failed(conn: Connection, item_id: int, reason: str, now: datetime) -> OutboxStatus:
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(
        status=OutboxStatus.FAILED.value, failure_reason=reason[:255], claimed_by=None,
        updated_at=now))
    # A farewell to someone who was just erased keeps nothing, sent or not.
    conn.execute(_FAREWELL_GONE, {"item_id": item_id})
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
        set_participant_status(conn, row.participant_id, report.participant_status, now)
    return True


def count_by_status(conn: Connection) -> dict[str, int]:
    """How many rows the outbox holds in each status (for /metrics)."""
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: n for status, n in rows}


def oldest_due(conn: Connection, channels: Sequence[str], now: datetime, *,
               bulk: bool = False) -> datetime | None:
    """When the longest-waiting reply (or, with `bulk`, bulk message) of these channels was
    due (None: nothing waits). A bulk backlog drains at the provider's rate, for hours when
    it is large: it is reported apart from replies, which must never wait."""
    if not channels:
        return None
    found: datetime | None = conn.execute(
        select(func.min(outbox.c.next_attempt_at)).where(
            outbox.c.status.in_((_QUEUED, _SENDING)), outbox.c.channel.in_(list(channels)),
            outbox.c.bulk == (true() if bulk else false()),
            outbox.c.next_attempt_at <= now)).scalar()
    return found
