"""Fixtures of the scheduler tests (tests/integration/test_reminders*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import App
from bot.config import Settings
from tests.conftest import FixedClock, RecordingSender
from tests.integration.reminders import CLOSING_DUE, VILLAGE, write


@pytest.fixture
def senders() -> dict[str, RecordingSender]:
    return {"sms": RecordingSender("sms"), "telegram": RecordingSender("telegram")}


@pytest.fixture
def settings(database: tuple[str, str | None]) -> Settings:
    return replace(Settings.from_env({}, dotenv=None), database_url=database[0],
                   contact="participation@example.org")


@pytest.fixture
async def village(database: tuple[str, str | None], settings: Settings, clock: FixedClock,
                  senders: dict[str, RecordingSender], tmp_path: Path) -> AsyncIterator[App]:
    async with App.open(settings, senders=senders, clock=clock,
                        schema=database[1]) as app:
        await app.load_campaigns(write(tmp_path / "campaigns", VILLAGE))
        yield app


@pytest.fixture
async def two_processes(database: tuple[str, str | None], settings: Settings,
                        clock: FixedClock, senders: dict[str, RecordingSender],
                        tmp_path: Path) -> AsyncIterator[tuple[App, App]]:
    """Two Votz instances ("a", "b") on one database, VILLAGE loaded, at the time its
    "vote-closing" reminder is due."""
    clock.now = CLOSING_DUE
    async with App.open(replace(settings, instance="a"), senders=senders, clock=clock,
                        schema=database[1]) as one, \
            App.open(replace(settings, instance="b"), senders=senders, clock=clock,
                     schema=database[1]) as other:
        await one.load_campaigns(write(tmp_path / "two", VILLAGE))
        await other.refresh_catalog()
        yield one, other
