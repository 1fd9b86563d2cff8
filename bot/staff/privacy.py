"""GDPR requests: export or erase one person, and forget what is no longer needed.

Staff type an address as people write it ("06 12 34 56 78"); the channel's registry entry
turns it into the form stored ("+33612345678"), and an unknown channel is a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.channels import registry
from bot.errors import ConfigError
from bot.store.db import Database
from bot.store.repo import erase_address, participant_export, purge_outbox, purge_unconsented


@dataclass(frozen=True, slots=True)
class Purged:
    participants: int  # people who never consented, forgotten
    messages: int  # finished outbox rows deleted


def stored_address(channel: str, raw: str) -> str:
    """The address as stored for `channel`; ConfigError for an unknown channel or address."""
    address = registry.channel(channel).normalise_address(raw)
    if address is None:
        raise ConfigError(f"{raw!r} is not an address on {channel}")
    return address


async def export(db: Database, channel: str, raw_address: str) -> dict[str, Any] | None:
    """Everything held about one person, as plain data; None when nobody has that address."""
    address = stored_address(channel, raw_address)
    return await db.run(lambda conn: participant_export(conn, channel, address))


async def erase(db: Database, channel: str, raw_address: str, now: datetime) -> bool:
    """Erase one person and every message to their address (counted ballots stay, anonymous);
    False when nothing was held about that address."""
    address = stored_address(channel, raw_address)
    return await db.run(lambda conn: erase_address(conn, channel, address, now))


async def purge(db: Database, now: datetime, *, days: int, outbox_days: int) -> Purged:
    """Forget people who never consented within `days`; delete messages older than
    `outbox_days` once finished (they hold addresses and texts)."""
    before = now - timedelta(days=days)
    sent_before = now - timedelta(days=outbox_days)
    count = await db.run(lambda conn: purge_unconsented(conn, before, now))
    messages = await db.run(lambda conn: purge_outbox(conn, sent_before))
    return Purged(count, messages)
