"""Long-running tasks that never stop silently: restarted after an error, with backoff.

Every loop of `votz run` (each channel's dispatcher, Telegram polling, the scheduler) runs
under a `Supervisor`. A loop that raises is logged with its cause (`task.failed`), counted
(`votz_task_restarts_total{task=...}` on /metrics), and started again after a delay that
doubles up to a cap; a loop that returns while Votz is not stopping is a fault too. While a
task is failing, `/healthz` names it and says since when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Loop = Callable[[asyncio.Event], Awaitable[None]]  # runs until the event (stopping) is set

log = logging.getLogger("votz.supervisor")
HEALTHY_AFTER = 5.0  # seconds a restarted task must run before it counts as recovered


@dataclass
class TaskState:
    name: str
    started_at: float = 0.0  # monotonic time of the last (re)start
    failing_since: float | None = None  # wall-clock time of the first failure in a row
    last_error: str = ""
    restarts: int = 0
    running: bool = False  # inside the loop now (not waiting to be restarted)


class Supervisor:
    """Starts named loops and keeps them running until `stop`."""

    def __init__(self, metrics: Counter[str], *, first_delay: float = 0.5,
                 max_delay: float = 5.0, healthy_after: float = HEALTHY_AFTER,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self.monotonic = monotonic
        self.wall = wall
        self.states: dict[str, TaskState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    def start(self, name: str, loop: Loop) -> None:
        """Run `loop(stopping)` as task `name`, again after each failure, until `stop`."""
        assert name not in self._tasks, name
        self.states[name] = TaskState(name)
        self._tasks[name] = asyncio.create_task(self._keep(name, loop), name=name)

    async def _keep(self, name: str, loop: Loop) -> None:
        state = self.states[name]
        delay = self.first_delay
        while not self._stopping.is_set():
            state.started_at = self.monotonic()
            state.running = True
            try:
                await loop(self._stopping)
                if self._stopping.is_set():
                    return
                raise RuntimeError("the loop returned while Votz was running")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.running = False
                if self.monotonic() - state.started_at > self.healthy_after:
                    delay = self.first_delay  # it had recovered: a new run of failures
                    state.failing_since = None
                if state.failing_since is None:
                    state.failing_since = self.wall()
                state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                state.restarts += 1
                self.metrics[f'task_restarts_total{{task="{name}"}}'] += 1
                log.error("task.failed task=%s error=%s restart_in=%.1fs", name,
                          state.last_error, delay, exc_info=exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, self.max_delay)

    def failing(self) -> list[TaskState]:
        """The tasks failing now (a task that ran `healthy_after` s since its restart has
        recovered)."""
        now = self.monotonic()
        for state in self.states.values():
            if state.failing_since is not None and state.running \
                    and now - state.started_at > self.healthy_after:
                state.failing_since = None
        return [s for s in self.states.values() if s.failing_since is not None]

    async def stop(self, timeout: float) -> None:
        """Ask every loop to stop; cancel those still running after `timeout` seconds."""
        self._stopping.set()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
