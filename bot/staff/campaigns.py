"""Campaigns as staff see them: where each stands now, and the link and QR code for posters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.config import Settings
from bot.domain.campaigns import Campaign, Moment, Phase
from bot.errors import ConfigError
from bot.store.db import Database
from bot.store.repo import get_campaign, load_campaigns


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
