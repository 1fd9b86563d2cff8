"""Keep the conversation's catalog current: phases move with the clock, moderation publishes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

CATALOG_REFRESH_SECONDS = 30.0


class Refreshes(Protocol):
    async def refresh_catalog(self) -> None: ...


async def refresh_catalog_every(app: Refreshes, stop: asyncio.Event, *,
                                seconds: float = CATALOG_REFRESH_SECONDS) -> None:
    """Reload campaigns and published proposals every `seconds` until `stop` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        await app.refresh_catalog()
