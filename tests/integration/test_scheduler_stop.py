"""Stopping `votz run` while a scheduler tick is under way: the tick ends, nothing is logged
as an error (APScheduler's shutdown used to cancel it: "Job … raised an exception")."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.app import App
from bot.scheduling.scheduler import Scheduler, Tick


async def test_a_tick_under_way_ends_when_the_scheduler_stops(
        village: App, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(village)
    started, ended = asyncio.Event(), asyncio.Event()
    real_tick = scheduler.tick

    async def slow_tick() -> Tick:
        started.set()
        await asyncio.sleep(0.3)  # still running when `stopping` is set
        tick = await real_tick()
        ended.set()
        return tick

    scheduler.tick = slow_tick  # type: ignore[method-assign]
    stopping = asyncio.Event()
    caplog.set_level(logging.INFO)
    running = asyncio.create_task(scheduler.run(stopping))
    await asyncio.wait_for(started.wait(), 10)
    stopping.set()
    await asyncio.wait_for(running, 15)
    assert ended.is_set()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
