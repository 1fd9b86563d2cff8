"""Fixtures of the scheduler tests (tests/integration/test_reminders*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import App
from bot.config import Settings
from tests.conftest import FixedClock, RecordingSender
from tests.integration.reminders import VILLAGE, write


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
