"""Campaigns as staff see them: where each stands now, and the link and QR code for posters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, func, select, update

from bot.channels.base import Reply
from bot.config import Settings
from bot.domain.campaigns import PARIS, Campaign, Moment, Phase, with_phase
from bot.domain.events import Target
from bot.errors import ConfigError, FrozenRulesError
from bot.i18n import I18n
from bot.scheduling.events import (
    MAX_SEGMENTS,
    NUDGES,
    PENDING,
    audience_size,
    event_text,
    event_variants,
    hint_channels,
    log_change,
    plan,
    results_text,
)
from bot.store.db import Database
from bot.store.repo import (
    campaign_to_json,
    get_campaign,
    load_campaigns,
    vote_opened,
)
from bot.store.tables import campaign_events, campaign_log, outbox
from bot.store.tables import campaigns as campaigns_table


@dataclass(frozen=True, slots=True)
class Standing:
    campaign: Campaign
    phase: Phase | Moment


@dataclass(frozen=True, slots=True)
class Poster:
    link: str
    qr_code: Path


async def standings(db: Database, now: datetime) -> list[Standing]:
    """Every campaign, in the order loaded, with its phase at `now`."""
    return [Standing(c, c.phase_at(now)) for c in await db.run(load_campaigns)]


async def poster(db: Database, settings: Settings, slug: str, *, bot: str | None = None,
                 output: Path | None = None) -> Poster:
    """The Telegram deep link that opens the campaign, and its QR code as a PNG.

    `bot` is the bot's username; without it the bot is asked (VOTZ_TELEGRAM_TOKEN).
    """
    import qrcode
    from qrcode.image.pure import PyPNGImage

    username = bot or await _bot_username(settings)
    await db.run(lambda conn: get_campaign(conn, slug))  # it must exist
    link = f"https://t.me/{username.lstrip('@')}?start={slug}"
    path = output or Path(f"{slug}-telegram.png")
    image = qrcode.make(link, image_factory=PyPNGImage, box_size=12, border=4)
    with path.open("wb") as fh:
        image.save(fh)
    return Poster(link, path)


async def _bot_username(settings: Settings) -> str:
    if not settings.telegram_token:
        raise ConfigError("give --bot USERNAME or set VOTZ_TELEGRAM_TOKEN")
    from bot.channels.telegram import make_bot

    async with make_bot(settings) as client:
        username = (await client.get_me()).username
    if not username:
        raise ConfigError("the bot has no username: give --bot USERNAME")
    return username


# --- phases and events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventLine:
    event: str
    when: str  # as declared (vote.end - 2d), or "" for the recurring nudges
    due_at: datetime
    target: str
    status: str  # pending, done, skipped, cancelled, recurring
    queued: int
    note: str | None
    outbox: dict[str, int]  # status → messages of this event
    audience: dict[str, int]  # channel → people it would reach now (pending events)
    segments: dict[str, int]  # locale → SMS segments of its text (as queued, hint included)


@dataclass(frozen=True, slots=True)
class CampaignStatus:
    campaign: Campaign
    phase: Phase | Moment
    events: list[EventLine]
    log: list[tuple[datetime, str, str, str]]  # at, actor, action, detail (latest first)


async def force_phase(db: Database, slug: str, phase: Phase, now: datetime, *, actor: str,
                      reason: str, grace: timedelta) -> list[str]:
    """Put a campaign in `phase` from now, whatever its dates say, with a logged reason;
    pending events are rescheduled to the new dates. Returns the rescheduling, in words."""
    if not reason.strip():
        raise ConfigError("say why (--reason): it is kept in the campaign's log")

    order = list(Phase)

    def apply(conn: Connection) -> list[str]:
        campaign = get_campaign(conn, slug)
        current = campaign.phase_at(now)
        if current is phase:
            raise ConfigError(f"{slug} is already in its {phase.value} phase")
        opened = vote_opened(conn, campaign, now)
        if opened is not None and order.index(phase) < order.index(Phase.VOTE):
            raise FrozenRulesError(
                f"{slug}: its vote opened on {opened.astimezone(PARIS):%Y-%m-%d %H:%M}; it "
                f"cannot go back to its {phase.value} phase (its ballot is frozen)")
        changed = with_phase(campaign, phase, now)
        conn.execute(update(campaigns_table).where(campaigns_table.c.id == campaign.id)
                     .values(definition=campaign_to_json(changed), updated_at=now))
        log_change(conn, campaign.id, now, actor, "phase",
                   f"{current.value} → {phase.value}: {reason.strip()}")
        return plan(conn, changed, now, grace=grace, actor=actor)

    return await db.run(apply)


async def campaign_status(db: Database, now: datetime, i18n: I18n, *,
                          slug: str | None = None, log_lines: int = 5) -> list[CampaignStatus]:
    """Every campaign (or one) with its phase, its events and what they sent."""

    def query(conn: Connection) -> list[CampaignStatus]:
        found = [get_campaign(conn, slug)] if slug else load_campaigns(conn)
        return [CampaignStatus(c, c.phase_at(now), _events(conn, c, i18n),
                               _log(conn, c.id, log_lines)) for c in found]

    return await db.run(query)


def _events(conn: Connection, campaign: Campaign, i18n: I18n) -> list[EventLine]:
    declared = {e.id: e for e in campaign.events}
    sms = hint_channels()
    lines = []
    for row in conn.execute(select(campaign_events).where(
            campaign_events.c.campaign_id == campaign.id).order_by(campaign_events.c.due_at)):
        event = declared.get(row.event)
        prefix = (f"nudge:{campaign.id}:" if row.event == NUDGES
                  else f"event:{campaign.id}:{row.event}:")
        counts = {status: n for status, n in conn.execute(
            select(outbox.c.status, func.count()).where(outbox.c.idempotency_key.like(
                prefix.replace("%", r"\%") + "%")).group_by(outbox.c.status))}
        reach: dict[str, int] = {}
        segments: dict[str, int] = {}
        if event is not None:
            if row.status == PENDING:
                reach = audience_size(conn, campaign, event.target)
            results = results_text(conn, campaign) if event.results else None
            for variant in event_variants(event, campaign, i18n, results):
                for channel, measure in sms.items():  # the longest text of each language
                    text = variant.hinted.get(channel, variant.text)
                    segments[variant.locale] = max(segments.get(variant.locale, 0),
                                                   measure(Reply(text)).segments)
        lines.append(EventLine(
            row.event, event.when if event else "", row.due_at,
            event.target.value if event else Target.UNFINISHED.value, row.status, row.queued,
            row.note, counts, reach, segments))
    return lines


def _log(conn: Connection, campaign_id: int, limit: int) -> list[tuple[datetime, str, str, str]]:
    rows = conn.execute(select(campaign_log).where(campaign_log.c.campaign_id == campaign_id)
                        .order_by(campaign_log.c.id.desc()).limit(limit))
    return [(r.at, r.actor, r.action, r.detail) for r in rows]


def reminder_problems(campaign: Campaign, i18n: I18n) -> list[str]:
    """Declared reminder texts an SMS would carry in more than two segments."""
    problems = []
    for event in campaign.declared_events or ():
        for locale in event.texts:
            text = event_text(event, campaign, i18n, locale)
            for channel, measure in hint_channels().items():
                cost = measure(Reply(text))
                if cost.segments > MAX_SEGMENTS:
                    problems.append(f"reminders.{event.id}.text.{locale}: {cost.segments} "
                                    f"{channel.upper()} segments ({cost.encoding}, {cost.units} "
                                    f"units); at most {MAX_SEGMENTS}")
    return problems
