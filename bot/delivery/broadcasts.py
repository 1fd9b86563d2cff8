"""Staff broadcasts: an audience query turned into outbox rows in one set-based insert.

Each row carries the idempotency key `broadcast:KEY:PARTICIPANT`, so sending the same
broadcast twice (a retried command, a second operator) queues nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, case, cast, func, literal, select
from sqlalchemy import String as SqlString

from bot.channels.base import Reply
from bot.channels.gsm7 import cost
from bot.channels.sms import render as render_sms
from bot.delivery.outbox import OutboxStatus
from bot.domain.campaigns import Campaign
from bot.domain.participants import Status
from bot.store.repo import insert_for
from bot.store.tables import outbox, participants


@dataclass(frozen=True, slots=True)
class Audience:
    channel: str | None = None  # None: every channel
    campaign: Campaign | None = None  # only people eligible to take part in it


@dataclass(frozen=True, slots=True)
class Preview:
    recipients: dict[str, int]  # channel → people
    sms_segments: dict[str, int]  # locale → segments of one SMS
    sms_encoding: dict[str, str]
    sms_recipients_by_locale: dict[str, int]

    @property
    def total_sms_segments(self) -> int:
        return sum(self.sms_segments[loc] * n for loc, n in self.sms_recipients_by_locale.items())


def _who(audience: Audience) -> ColumnElement[bool]:
    conditions = [participants.c.consent_at.is_not(None),
                  participants.c.status == Status.ACTIVE.value]
    if audience.channel:
        conditions.append(participants.c.channel == audience.channel)
    if audience.campaign is not None:
        conditions.append(participants.c.age_bracket.in_(audience.campaign.audience.age_brackets))
        conditions.append(participants.c.departement.in_(audience.campaign.audience.departements))
    return and_(*conditions)


def preview(conn: Connection, audience: Audience, texts: Mapping[str, str]) -> Preview:
    rows = conn.execute(
        select(participants.c.channel, participants.c.locale, func.count())
        .where(_who(audience)).group_by(participants.c.channel, participants.c.locale)
    ).all()
    recipients: dict[str, int] = {}
    sms_by_locale: dict[str, int] = {}
    for channel, locale, n in rows:
        recipients[channel] = recipients.get(channel, 0) + n
        if channel == "sms":
            sms_by_locale[locale] = sms_by_locale.get(locale, 0) + n
    segments, encodings = {}, {}
    for locale in ("fr", "en", "oc"):
        measured = cost(render_sms(Reply(texts.get(locale) or texts["fr"])))
        segments[locale], encodings[locale] = measured.segments, measured.encoding
    return Preview(recipients, segments, encodings, sms_by_locale)


def queue_broadcast(conn: Connection, key: str, audience: Audience, texts: Mapping[str, str],
                    now: datetime) -> int:
    """Queue one message per person in the audience, in their language; return how many."""
    others = [(participants.c.locale == loc, literal(texts[loc]))
              for loc in ("en", "oc") if texts.get(loc)]
    text: ColumnElement[str] = (case(*others, else_=literal(texts["fr"])) if others
                                else literal(texts["fr"]))
    idempotency = literal(f"broadcast:{key}:") + cast(participants.c.id, SqlString)
    query = select(
        participants.c.id, participants.c.channel, participants.c.address, text,
        literal(json.dumps({"choices": [], "footer": ""})), literal(OutboxStatus.QUEUED.value),
        literal(0), literal(now, outbox.c.next_attempt_at.type), idempotency,
        literal(now, outbox.c.created_at.type), literal(now, outbox.c.updated_at.type),
    ).where(_who(audience))
    stmt = insert_for(conn, outbox).from_select(
        ["participant_id", "channel", "address", "text", "choices", "status", "attempts",
         "next_attempt_at", "idempotency_key", "created_at", "updated_at"], query,
    ).on_conflict_do_nothing()
    return conn.execute(stmt).rowcount or 0
