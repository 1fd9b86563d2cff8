"""Broadcasts: compose, preview (recipients, segments, cost), create (now or at a set time),
follow, cancel. The CLI and the Telegram staff chat both go through here.

A broadcast is a row of `broadcasts` (its texts, its audience, when it is to leave, who made
it). Queueing it is one set-based insert into the outbox (`queue_audience`): one bulk row per
person, in their language, marked with the broadcast's id; their counts by status are kept
on the broadcast's row by database triggers (migration 0006), whatever changes a row, so
progress is read in one row, not counted (0.2 s with 500,000 rows on SQLite, on the
connection the dispatcher needs); cancelling turns those still queued into `cancelled`. The
rows carry no idempotency key of their own (one more unique index to fill: queueing 500,000
on SQLite took 4.8-6.3 s with it, 4.7-5.1 s without): a broadcast is queued once because
its own row moves from scheduled to queued in the transaction that queues it, locked (SKIP
LOCKED) on PostgreSQL. A broadcast set for later is queued by the scheduler when its time comes (the
audience is the one of that moment: someone who voted meanwhile no longer gets "you have not
voted yet").

Creating the same broadcast twice (a command retried, two staff members) returns the first:
the key is derived from the texts, the audience, the send time and the day, unless given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, and_, func, select, update

from bot.channels.base import Reply
from bot.delivery.outbox import OutboxStatus
from bot.delivery.windows import Windows
from bot.domain.campaigns import AGE_BRACKETS, PARIS, Campaign
from bot.domain.events import Target
from bot.domain.participants import Status
from bot.domain.region import OCCITANIE
from bot.errors import ConfigError
from bot.i18n import LOCALES, I18n
from bot.scheduling.events import (
    Variant,
    audience,
    hinted,
    leaving,
    queue_audience,
    sendable_channels,
)
from bot.staff import measured
from bot.store.db import Database
from bot.store.repo import get_campaign, insert_for
from bot.store.tables import broadcasts, outbox, participants

if TYPE_CHECKING:
    from bot.channels.gsm7 import SmsCost

DEFAULT = LOCALES[0]  # the text everyone gets whose language has none


class BroadcastStatus:
    SCHEDULED = "scheduled"  # waiting for its send time (the scheduler queues it)
    QUEUED = "queued"  # its messages are in the outbox
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Audience:
    """Who gets a broadcast: everyone Votz may send announcements to, narrowed by each
    filter given (they combine: SMS people of the Lozère aged 18-25 who have not voted)."""

    channel: str | None = None
    campaign: str | None = None  # slug: people eligible for it (and not unfollowing it)
    departements: tuple[str, ...] = ()
    ages: tuple[str, ...] = ()  # age brackets
    locales: tuple[str, ...] = ()
    not_voted: str | None = None  # slug: eligible for it and no ballot in it yet

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Audience:
        raw = json.loads(text)
        return cls(channel=raw.get("channel"), campaign=raw.get("campaign"),
                   departements=tuple(raw.get("departements", ())),
                   ages=tuple(raw.get("ages", ())), locales=tuple(raw.get("locales", ())),
                   not_voted=raw.get("not_voted"))

    def describe(self) -> str:
        """In French, for staff: "SMS · 48, 12 · 18-25 · pas encore voté (budget-2026)"."""
        parts = []
        if self.channel:
            parts.append(self.channel.upper() if self.channel == "sms" else self.channel)
        if self.campaign:
            parts.append(f"public de {self.campaign}")
        if self.departements:
            parts.append("dép. " + ", ".join(self.departements))
        if self.ages:
            parts.append(", ".join(self.ages) + " ans")
        if self.locales:
            parts.append("langue " + ", ".join(self.locales))
        if self.not_voted:
            parts.append(f"pas encore voté ({self.not_voted})")
        return " · ".join(parts) or "tout le monde"


@dataclass(frozen=True, slots=True)
class Broadcast:
    key: str  # idempotency: the same key is created once, and queues a person once
    audience: Audience
    texts: Mapping[str, str]  # locale → text; "" where that language falls back to DEFAULT


@dataclass(frozen=True, slots=True)
class Preview:
    recipients: dict[str, int]  # channel → people
    by_locale: dict[str, dict[str, int]]  # channel → locale → people
    costs: dict[str, dict[str, SmsCost]]  # measured channel → locale → one message's cost
    missing_locales: tuple[str, ...]  # languages of recipients with no text: French goes
    price: float  # per unit (SMS segment) on measured channels

    @property
    def total(self) -> int:
        return sum(self.recipients.values())

    def people(self, channel: str, locale: str) -> int:
        return self.by_locale.get(channel, {}).get(locale, 0)

    def segments(self, channel: str) -> int:
        """What the whole broadcast costs on a measured channel, in its units (segments)."""
        return sum(cost.segments * self.people(channel, locale)
                   for locale, cost in self.costs.get(channel, {}).items())

    @property
    def cost(self) -> float:
        """The estimated price of the whole broadcast (SMS segments × the price of one)."""
        return round(sum(self.segments(channel) for channel in self.costs) * self.price, 2)


@dataclass(frozen=True, slots=True)
class Progress:
    id: int
    key: str
    status: str  # scheduled, sending, done, cancelled
    send_at: datetime
    created_by: str
    created_at: datetime
    summary: str  # the start of the French text
    audience: Audience
    total: int = 0  # messages queued
    queued: int = 0  # not yet sent (including those held until a sending window opens)
    held: int = 0  # of those, waiting for a sending window (quiet hours)
    sending: int = 0  # handed to the provider, outcome not yet recorded
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    cancelled: int = 0
    cancelled_by: str | None = None
    staff_chat: str | None = None
    staff_message: str | None = None
    finished_at: datetime | None = None

    @property
    def remaining(self) -> int:
        return self.queued + self.sending

    @property
    def left(self) -> int:
        """Messages that left (sent, delivered, or failed at the provider)."""
        return self.sent + self.delivered + self.failed


# --- composing -----------------------------------------------------------------------------


def _check(values: Sequence[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, unknown))}: "
                          f"one of {', '.join(valid)}")
    return tuple(dict.fromkeys(values))


def _departement(value: str) -> str:
    value = value.strip()
    return value.zfill(2) if value.isdigit() else value


def checked(audience: Audience) -> Audience:
    """The audience with its values validated (a ConfigError names the valid ones)."""
    if audience.channel is not None:
        _check([audience.channel], sendable_channels(), "channel")
    return Audience(
        channel=audience.channel, campaign=audience.campaign,
        departements=_check([_departement(d) for d in audience.departements], OCCITANIE,
                            "département"),
        ages=_check(list(audience.ages), AGE_BRACKETS, "age bracket"),
        locales=_check(list(audience.locales), LOCALES, "language"),
        not_voted=audience.not_voted)


def derive_key(texts: Mapping[str, str], audience: Audience, at: datetime | None,
               now: datetime) -> str:
    """The same broadcast composed the same day (a retried command) has the same key."""
    basis = [dict(texts), audience.to_json(), at.isoformat() if at else "",
             now.astimezone(PARIS).date().isoformat()]
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


async def compose(db: Database, texts: Mapping[str, str | None],
                  audience: Audience | None = None, *, key: str | None = None,
                  now: datetime | None = None, at: datetime | None = None) -> Broadcast:
    """A broadcast of `texts` (French required; the others fall back to it) to `audience`;
    the campaigns it names must exist."""
    audience = checked(audience or Audience())
    full = {locale: (texts.get(locale) or "").strip() for locale in LOCALES}
    if not full[DEFAULT]:
        raise ConfigError(f"a broadcast needs its {DEFAULT!r} text")
    slugs = [slug for slug in (audience.campaign, audience.not_voted) if slug]
    await db.run(lambda conn: [get_campaign(conn, slug) for slug in slugs])
    if key is None:
        key = derive_key(full, audience, at, now or datetime.now(PARIS))
    return Broadcast(key, audience, full)


def who(conn: Connection, audience: Audience) -> ColumnElement[bool]:
    """Consenting, not stopped, announcements not turned off (RAPPELS NON), on a channel Votz
    sends on (never the console), and in every filter given."""
    conditions = [participants.c.consent_at.is_not(None),
                  participants.c.status == Status.ACTIVE.value,
                  participants.c.reminders.is_(True),
                  participants.c.channel.in_(sendable_channels())]
    if audience.channel:
        conditions.append(participants.c.channel == audience.channel)
    if audience.departements:
        conditions.append(participants.c.departement.in_(audience.departements))
    if audience.ages:
        conditions.append(participants.c.age_bracket.in_(audience.ages))
    if audience.locales:
        conditions.append(participants.c.locale.in_(audience.locales))
    if audience.campaign:
        conditions.append(_target(conn, audience.campaign, Target.ELIGIBLE))
    if audience.not_voted:
        conditions.append(_target(conn, audience.not_voted, Target.NOT_VOTED))
    return and_(*conditions)


def _target(conn: Connection, slug: str, target: Target) -> ColumnElement[bool]:
    campaign: Campaign = get_campaign(conn, slug)
    return audience(campaign, target)


async def show(db: Database, broadcast: Broadcast, *, price: float = 0.0) -> Preview:
    return await db.run(lambda conn: preview(conn, broadcast.audience, broadcast.texts,
                                             price=price))


def preview(conn: Connection, audience: Audience, texts: Mapping[str, str], *,
            price: float = 0.0) -> Preview:
    rows = conn.execute(
        select(participants.c.channel, participants.c.locale, func.count())
        .where(who(conn, audience)).group_by(participants.c.channel, participants.c.locale)
    ).all()
    recipients: dict[str, int] = {}
    by_locale: dict[str, dict[str, int]] = {}
    for channel, locale, n in rows:
        recipients[channel] = recipients.get(channel, 0) + n
        here = by_locale.setdefault(channel, {})
        here[locale] = here.get(locale, 0) + n
    costs = {channel: {locale: measure(Reply(texts.get(locale) or texts[DEFAULT]))
                       for locale in LOCALES}
             for channel, measure in measured().items()}
    spoken = {locale for counts in by_locale.values() for locale, n in counts.items() if n}
    missing = tuple(locale for locale in LOCALES if locale in spoken and not texts.get(locale))
    return Preview(recipients, by_locale, costs, missing, price)


def parse_send_time(text: str, now: datetime) -> datetime:
    """When staff want it sent, in Paris time: "18:30" (today, or tomorrow once past),
    "12/12 18:30" (this year, or next once past), "2026-12-12 18:30"."""
    raw = " ".join(text.strip().lower().replace("h", ":").split())
    raw = raw + "00" if raw.endswith(":") else raw  # "18h"
    local = now.astimezone(PARIS)
    for form, fills in (("%H:%M", "time"), ("%d/%m %H:%M", "day"),
                        ("%d/%m/%Y %H:%M", ""), ("%Y-%m-%d %H:%M", ""),
                        ("%Y-%m-%dt%H:%M", "")):
        try:
            parsed = datetime.strptime(raw, form)
        except ValueError:
            continue
        if fills == "time":
            when = local.replace(hour=parsed.hour, minute=parsed.minute, second=0,
                                 microsecond=0)
            if when <= local:
                when += timedelta(days=1)
        elif fills == "day":
            when = parsed.replace(year=local.year, tzinfo=PARIS)
            if when <= local:
                when = when.replace(year=local.year + 1)
        else:
            when = parsed.replace(tzinfo=PARIS)
        return when.astimezone(UTC)
    raise ConfigError(f"send time {text!r}: write 18:30, 12/12 18:30 or 2026-12-12 18:30 "
                      "(Paris time)")


# --- sending -------------------------------------------------------------------------------


async def create(db: Database, broadcast: Broadcast, *, by: str, now: datetime,
                 at: datetime | None = None, i18n: I18n, windows: Windows,
                 staff_chat: str | None = None) -> Progress:
    """Store the broadcast and queue it now (`at` missing or past), or leave it scheduled
    for the scheduler; the one made earlier when its key exists already."""

    def apply(conn: Connection) -> int:
        existing = conn.execute(select(broadcasts.c.id)
                                .where(broadcasts.c.key == broadcast.key)).scalar()
        if existing is not None:
            return int(existing)
        later = at is not None and at > now
        inserted = conn.execute(insert_for(conn, broadcasts).values(
            key=broadcast.key, texts=json.dumps(dict(broadcast.texts), ensure_ascii=False),
            audience=broadcast.audience.to_json(), created_by=by[:64], created_at=now,
            send_at=at if later else now, staff_chat=staff_chat,
            status=BroadcastStatus.SCHEDULED if later else BroadcastStatus.QUEUED,
        ).on_conflict_do_nothing().returning(broadcasts.c.id)).scalar()
        if inserted is None:  # created meanwhile by another process
            return int(conn.execute(select(broadcasts.c.id)
                                    .where(broadcasts.c.key == broadcast.key)).scalar_one())
        if not later:
            _queue(conn, int(inserted), broadcast, now, i18n=i18n, windows=windows)
        return int(inserted)

    found = await db.run(apply)
    # As queued a moment ago (those held for a sending window counted only when a window is
    # closed now: counting 500,000 held rows takes a tenth of a second).
    return await db.run(lambda conn: _progress(conn, _row(conn, found), now, counted=False,
                                               windows=windows))


def _queue(conn: Connection, broadcast_id: int, broadcast: Broadcast, now: datetime, *,
           i18n: I18n, windows: Windows) -> int:
    """One message per person in the audience, in their language, as a bulk message (held
    outside each channel's sending window; the opt-out hint where it is due and costs no
    extra segment), in one INSERT … SELECT."""
    variants = []
    for locale in LOCALES:
        text = broadcast.texts.get(locale) or broadcast.texts[DEFAULT]
        variants.append(Variant(participants.c.locale == locale, text,
                                hinted(text, locale, i18n), locale))
    queued = queue_audience(conn, key_prefix=None,
                            who=who(conn, broadcast.audience), variants=variants, now=now,
                            windows=windows, broadcast_id=broadcast_id)
    # The triggers of migration 0006 keep the counts from here on; queueing sets its own
    # (no insert trigger: it would cost each of the 500,000 rows of one INSERT … SELECT).
    conn.execute(update(broadcasts).where(broadcasts.c.id == broadcast_id).values(
        status=BroadcastStatus.QUEUED, queued=queued, queued_at=now,
        count_queued=broadcasts.c.count_queued + queued))
    return queued


def _stored(row: Any) -> Broadcast:
    return Broadcast(row.key, Audience.from_json(row.audience), json.loads(row.texts))


def queue_due(conn: Connection, now: datetime, *, i18n: I18n,
              windows: Windows) -> tuple[int, int] | None:
    """Queue the broadcast scheduled earliest whose time has come (the scheduler calls this
    until it returns None); its id and how many messages were queued. On PostgreSQL, one
    another process is queueing is skipped (SKIP LOCKED): each is queued once."""
    query = (select(broadcasts).where(broadcasts.c.status == BroadcastStatus.SCHEDULED,
                                      broadcasts.c.send_at <= now)
             .order_by(broadcasts.c.send_at, broadcasts.c.id).limit(1))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    if row is None:
        return None
    queued = _queue(conn, row.id, _stored(row), now, i18n=i18n, windows=windows)
    return int(row.id), queued


def next_scheduled(conn: Connection, now: datetime) -> datetime | None:
    found: datetime | None = conn.execute(
        select(func.min(broadcasts.c.send_at))
        .where(broadcasts.c.status == BroadcastStatus.SCHEDULED)).scalar()
    return found


# --- following -----------------------------------------------------------------------------


_STATUSES = tuple(OutboxStatus)


def _counts(conn: Connection, row: Any, now: datetime) -> dict[str, int]:
    """Its messages by status, as kept on its row (by the triggers of migration 0006), and
    those held for a sending window (a range of `ix_outbox_broadcast`: none read when none
    is held)."""
    counts = {status.value: getattr(row, f"count_{status.value}") for status in _STATUSES}
    counts["held"] = _held(conn, row.id, now) if counts[OutboxStatus.QUEUED.value] else 0
    return counts


def _held(conn: Connection, broadcast_id: int, now: datetime) -> int:
    held: int = conn.execute(select(func.count()).where(
        outbox.c.broadcast_id == broadcast_id, outbox.c.status == OutboxStatus.QUEUED.value,
        outbox.c.next_attempt_at > now)).scalar_one()
    return held


def _progress(conn: Connection, row: Any, now: datetime, *, counted: bool = True,
              windows: Windows | None = None) -> Progress:
    """Where the broadcast stands; without `counted`, as if nothing had left yet (what
    `create` returns: its messages were queued a moment ago; those held for a sending
    window are counted only when a channel's window is closed now)."""
    if row.status == BroadcastStatus.SCHEDULED:
        counts: dict[str, int] = {}
    elif counted:
        counts = _counts(conn, row, now)
    else:
        counts = {OutboxStatus.QUEUED.value: row.queued, "held": _held(conn, row.id, now)
                  if row.queued and windows is not None
                  and any(at > now for at in leaving(windows, now, None).values()) else 0}
    texts = json.loads(row.texts)
    summary = texts.get(DEFAULT, "").replace("\n", " ")
    queued = counts.get(OutboxStatus.QUEUED.value, 0)
    sending = counts.get(OutboxStatus.SENDING.value, 0)
    if row.status == BroadcastStatus.QUEUED:
        status = "sending" if queued + sending else "done"
    else:
        status = row.status
    return Progress(
        id=row.id, key=row.key, status=status, send_at=row.send_at, created_by=row.created_by,
        created_at=row.created_at, summary=summary[:40] + ("…" if len(summary) > 40 else ""),
        audience=Audience.from_json(row.audience), total=row.queued, queued=queued,
        held=counts.get("held", 0), sending=sending,
        sent=counts.get(OutboxStatus.SENT.value, 0),
        delivered=counts.get(OutboxStatus.DELIVERED.value, 0),
        failed=counts.get(OutboxStatus.FAILED.value, 0),
        cancelled=counts.get(OutboxStatus.CANCELLED.value, 0),
        cancelled_by=row.cancelled_by, staff_chat=row.staff_chat,
        staff_message=row.staff_message, finished_at=row.finished_at)


def _row(conn: Connection, broadcast_id: int) -> Any:
    row = conn.execute(select(broadcasts).where(broadcasts.c.id == broadcast_id)).first()
    if row is None:
        raise ConfigError(f"no broadcast #{broadcast_id} (see `votz broadcast list`)")
    return row


async def progress(db: Database, broadcast_id: int, *, now: datetime | None = None
                   ) -> Progress:
    at = now or datetime.now(PARIS)
    return await db.run(lambda conn: _progress(conn, _row(conn, broadcast_id), at))


async def list_broadcasts(db: Database, *, limit: int = 20, now: datetime | None = None
                          ) -> list[Progress]:
    """The latest broadcasts, newest first."""
    at = now or datetime.now(PARIS)

    def query(conn: Connection) -> list[Progress]:
        rows = conn.execute(select(broadcasts).order_by(broadcasts.c.id.desc())
                            .limit(limit)).all()
        return [_progress(conn, row, at) for row in rows]

    return await db.run(query)


async def running(db: Database, *, now: datetime | None = None) -> list[Progress]:
    """Broadcasts whose final report was not made yet (`finish`): scheduled, sending, or
    just done or cancelled."""
    at = now or datetime.now(PARIS)

    def query(conn: Connection) -> list[Progress]:
        rows = conn.execute(select(broadcasts).where(broadcasts.c.finished_at.is_(None))
                            .order_by(broadcasts.c.id)).all()
        return [_progress(conn, row, at) for row in rows]

    return await db.run(query)


async def set_staff_message(db: Database, broadcast_id: int, chat: str, message: str) -> None:
    await db.run(lambda conn: conn.execute(
        update(broadcasts).where(broadcasts.c.id == broadcast_id)
        .values(staff_chat=chat, staff_message=message)))


async def finish(db: Database, broadcast_id: int, now: datetime) -> bool:
    """Record that the final report was made; False when it already was (by another
    process), so it is made once."""
    changed = await db.run(lambda conn: conn.execute(
        update(broadcasts).where(broadcasts.c.id == broadcast_id,
                                 broadcasts.c.finished_at.is_(None))
        .values(finished_at=now)).rowcount)
    return bool(changed)


async def cancel(db: Database, broadcast_id: int, *, by: str, now: datetime) -> Progress:
    """Stop a broadcast: what is still queued (or not queued yet) is never sent; messages
    already handed to the provider (at most each channel's concurrency) still go."""

    def apply(conn: Connection) -> Progress:
        row = _row(conn, broadcast_id)
        if row.status != BroadcastStatus.CANCELLED:
            conn.execute(update(outbox).where(
                outbox.c.broadcast_id == broadcast_id,
                outbox.c.status == OutboxStatus.QUEUED.value,
            ).values(status=OutboxStatus.CANCELLED.value, updated_at=now, claimed_by=None,
                     failure_reason=f"broadcast cancelled by {by}"[:255]))
            conn.execute(update(broadcasts).where(broadcasts.c.id == broadcast_id).values(
                status=BroadcastStatus.CANCELLED, cancelled_at=now, cancelled_by=by[:64]))
            row = _row(conn, broadcast_id)
        return _progress(conn, row, now)

    return await db.run(apply)
