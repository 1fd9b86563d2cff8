"""A supervised loop that fails is restarted, counted and reported until it recovers."""

from __future__ import annotations

import asyncio
from collections import Counter

from bot.supervision import HEALTHY_AFTER, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_failing_loop_is_restarted_and_reported_until_it_recovers() -> None:
    metrics: Counter[str] = Counter()
    clock = Clock()
    supervisor = Supervisor(metrics, first_delay=0, max_delay=0, monotonic=clock, wall=clock)
    runs = 0
    healthy = asyncio.Event()
    release = asyncio.Event()

    async def flaky(stopping: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise ConnectionError(f"database gone ({runs})")
        healthy.set()
        await release.wait()

    supervisor.start("dispatcher", flaky)
    await asyncio.wait_for(healthy.wait(), timeout=5)
    assert runs == 4
    assert metrics['task_restarts_total{task="dispatcher"}'] == 3
    [failing] = supervisor.failing()  # restarted a moment ago: not yet recovered
    assert failing.name == "dispatcher"
    assert failing.last_error == "ConnectionError: database gone (3)"
    assert failing.failing_since == 1000.0
    clock.now += HEALTHY_AFTER + 1
    assert supervisor.failing() == []
    release.set()
    await supervisor.stop(timeout=5)


async def test_a_loop_that_returns_by_itself_is_a_fault() -> None:
    metrics: Counter[str] = Counter()
    supervisor = Supervisor(metrics, first_delay=0, max_delay=0)
    calls = 0
    done = asyncio.Event()

    async def returns(stopping: asyncio.Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            done.set()
            await asyncio.Event().wait()

    supervisor.start("poller", returns)
    await asyncio.wait_for(done.wait(), timeout=5)
    assert metrics['task_restarts_total{task="poller"}'] == 1
    await supervisor.stop(timeout=0.1)  # the second run never returns: it is cancelled


async def test_stop_waits_for_loops_that_finish_their_work() -> None:
    supervisor = Supervisor(Counter())
    finished = []

    async def drains(stopping: asyncio.Event) -> None:
        await stopping.wait()
        await asyncio.sleep(0)
        finished.append("drained")

    supervisor.start("dispatcher", drains)
    await asyncio.sleep(0)
    await supervisor.stop(timeout=5)
    assert finished == ["drained"]
