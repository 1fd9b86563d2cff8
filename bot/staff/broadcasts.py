"""Broadcasts: compose, preview (recipients, and cost where a channel charges per unit), queue.

Queueing is one set-based insert into the outbox. Each row carries the idempotency key
`broadcast:KEY:PARTICIPANT`, so sending the same broadcast twice (a retried command, a second
operator) queues nothing more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Connection, and_, func, select

from bot.channels import registry
from bot.channels.base import Reply
from bot.delivery.windows import Windows
from bot.domain.campaigns import Campaign
from bot.domain.participants import Status
from bot.errors import ConfigError
from bot.i18n import LOCALES, I18n
from bot.scheduling.events import Variant, hinted, queue_audience, sendable_channels
from bot.staff import measured
from bot.store.db import Database
from bot.store.repo import get_campaign
from bot.store.tables import participants

if TYPE_CHECKING:
    from bot.channels.gsm7 import SmsCost

DEFAULT = LOCALES[0]  # the text everyone gets whose language has none


@dataclass(frozen=True, slots=True)
class Audience:
    channel: str | None = None  # None: every channel
    campaign: Campaign | None = None  # only people eligible to take part in it


@dataclass(frozen=True, slots=True)
class Broadcast:
    key: str  # idempotency: the same key never queues a person's message twice
    audience: Audience
    texts: Mapping[str, str]  # locale → text; "" where that language falls back to DEFAULT


@dataclass(frozen=True, slots=True)
class Preview:
    recipients: dict[str, int]  # channel → people
    by_locale: dict[str, dict[str, int]]  # channel → locale → people
    costs: dict[str, dict[str, SmsCost]]  # measured channel → locale → one message's cost

    def people(self, channel: str, locale: str) -> int:
        return self.by_locale.get(channel, {}).get(locale, 0)

    def segments(self, channel: str) -> int:
        """What the whole broadcast costs on a measured channel, in its units (segments)."""
        return sum(cost.segments * self.people(channel, locale)
                   for locale, cost in self.costs[channel].items())


async def compose(db: Database, texts: Mapping[str, str | None], *, campaign: str | None = None,
                  channel: str | None = None, key: str | None = None) -> Broadcast:
    """A broadcast of `texts` (DEFAULT's required) to the people of `campaign` on `channel`;
    the key, unless given, is derived from texts and audience."""
    if channel is not None:
        registry.channel(channel)  # a clear error for an unknown channel
    full = {locale: texts.get(locale) or "" for locale in LOCALES}
    if not full[DEFAULT]:
        raise ConfigError(f"a broadcast needs its {DEFAULT!r} text")
    key = key or hashlib.sha256(json.dumps([full, channel, campaign]).encode()).hexdigest()[:16]
    found = None
    if campaign is not None:
        found = await db.run(lambda conn: get_campaign(conn, campaign))
    return Broadcast(key, Audience(channel=channel, campaign=found), full)


async def show(db: Database, broadcast: Broadcast) -> Preview:
    return await db.run(lambda conn: preview(conn, broadcast.audience, broadcast.texts))


async def send(db: Database, broadcast: Broadcast, now: datetime, *, i18n: I18n,
               windows: Windows) -> int:
    """Queue the broadcast; how many messages were queued (0 when it was sent before)."""
    return await db.run(lambda conn: queue_broadcast(conn, broadcast.key, broadcast.audience,
                                                     broadcast.texts, now, i18n=i18n,
                                                     windows=windows))


def _who(audience: Audience) -> ColumnElement[bool]:
    """Consenting, not stopped, announcements not turned off (RAPPELS NON), on a channel Votz
    sends on (never the console), and in the campaign's audience when one is given."""
    conditions = [participants.c.consent_at.is_not(None),
                  participants.c.status == Status.ACTIVE.value,
                  participants.c.reminders.is_(True),
                  participants.c.channel.in_(sendable_channels())]
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
    by_locale: dict[str, dict[str, int]] = {}
    for channel, locale, n in rows:
        recipients[channel] = recipients.get(channel, 0) + n
        here = by_locale.setdefault(channel, {})
        here[locale] = here.get(locale, 0) + n
    costs = {channel: {locale: measure(Reply(texts.get(locale) or texts[DEFAULT]))
                       for locale in LOCALES}
             for channel, measure in measured().items()}
    return Preview(recipients, by_locale, costs)


def queue_broadcast(conn: Connection, key: str, audience: Audience, texts: Mapping[str, str],
                    now: datetime, *, i18n: I18n, windows: Windows) -> int:
    """Queue one message per person in the audience, in their language, as a bulk message
    (held outside each channel's sending window, the opt-out hint where it is due and costs
    no extra segment), in one INSERT … SELECT; return how many were queued."""
    variants = []
    for locale in LOCALES:
        text = texts.get(locale) or texts[DEFAULT]
        variants.append(Variant(participants.c.locale == locale, text,
                                hinted(text, locale, i18n), locale))
    return queue_audience(conn, key_prefix=f"broadcast:{key}:", who=_who(audience),
                          variants=variants, now=now, windows=windows)
