"""The one composition root of a Votz process (`votz run`, and the tests that run one).

    settings ─> App (database, migrations, catalog, pipeline, dispatcher)
             ─> channels the settings configure, from the registry (sender, routes, loops)
             ─> web app (health, metrics, the channels' routes) under uvicorn
             ─> supervised loops: one dispatcher per channel, the channels' own loops
                (Telegram polling), the scheduler (bot.scheduling: campaign events,
                reminders, catalog refresh, under APScheduler), and with Telegram the
                staff chat's progress edits (bot.staff.chat)

`Server.open` builds it (and closes it on leaving); `serve` runs it until SIGINT or SIGTERM,
then stops taking work, lets the sends and updates under way finish (at most
`VOTZ_SHUTDOWN_SECONDS`), gives back the claims it could not finish, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from bot.app import App
from bot.channels import registry
from bot.channels.base import Running
from bot.config import Settings
from bot.conversation.pipeline import Clock, utcnow
from bot.delivery.outbox import oldest_due
from bot.errors import ConfigError
from bot.metrics import ErrorCounter
from bot.scheduling.scheduler import Scheduler
from bot.supervision import Supervisor
from bot.web import create_web_app

if TYPE_CHECKING:
    from bot.staff.chat import StaffDesk

log = logging.getLogger("votz.run")
FULL_PASS_EVERY = 100  # the garbage collector's third threshold while serving (default 10)
HEALTH_DB_SECONDS = 3.0  # a database that does not answer /healthz's query within this is down


def _check_port(host: str, port: int) -> None:
    """A clear error for an address Votz cannot listen on (another process has it)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror} (another "
                              "`votz run`? set VOTZ_HTTP_PORT, or stop the other process)"
                              ) from None


class Server:
    """An `App` with its channels running, its web app built and its loops supervised."""

    def __init__(self, app: App, channels: dict[str, Running]) -> None:
        self.app = app
        self.channels = channels
        self.supervisor = Supervisor(app.metrics)
        self.scheduler = Scheduler(app, windows=app.dispatcher.windows)
        self._started: list[Running] = []
        self.staff: StaffDesk | None = None
        if app.settings.telegram_token:  # the staff chat rides on the Telegram channel
            from bot.staff.chat import attach

            self.staff = attach(app, channels)
        routes = [route for running in channels.values() for route in running.routes]
        self.web: Starlette = create_web_app(app, routes, health=self.health,
                                             details=self.details)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, *, clock: Clock = utcnow,
                   schema: str | None = None) -> AsyncIterator[Server]:
        wanted = registry.configured(settings)  # a half-set channel fails before anything
        async with App.open(settings, clock=clock, schema=schema) as app:
            channels: dict[str, Running] = {}
            try:
                for channel in wanted:
                    assert channel.open is not None, channel.name
                    running = channels[channel.name] = channel.open(settings, app)
                    app.dispatcher.add_sender(channel.name, running.sender)
                yield cls(app, channels)
            finally:
                for running in channels.values():
                    await running.sender.close()

    def details(self) -> dict[str, Any]:
        """Shown by /healthz whatever the status: the scheduler's last tick."""
        state = self.scheduler.state
        return {"scheduler": {
            "running": any(s.running for s in self.supervisor.states.values()
                           if s.name == "scheduler"),
            "last_tick": state.last_tick.isoformat() if state.last_tick else None,
            "ticks": state.ticks, "last_error": state.last_error}}

    async def health(self) -> list[str]:
        """What is wrong now, in words (empty: healthy)."""
        problems = []
        for state in self.supervisor.failing():
            since = datetime.fromtimestamp(state.failing_since or 0).astimezone()
            problems.append(f"task {state.name} failing since {since.isoformat()}: "
                            f"{state.last_error}")
        problems += self.scheduler.health()
        channels = list(self.app.dispatcher.channels)
        now = self.app.clock()
        try:
            async with asyncio.timeout(HEALTH_DB_SECONDS):
                oldest = await self.app.db.run(lambda conn: oldest_due(conn, channels, now))
        except Exception as exc:
            problems.append(f"database unreachable: {type(exc).__name__}: {exc}"[:300])
        else:
            limit = self.app.settings.health_outbox_delay_seconds
            if oldest is not None and (now - oldest).total_seconds() > limit:
                problems.append(f"outbox: a message due since {oldest.isoformat()} "
                                f"has not left (more than {limit:g} s)")
        return problems

    async def start(self) -> None:
        """Give back the claims of this instance's last run, start the channels (Telegram's
        command menu, its webhook or polling), then every loop under the supervisor."""
        await self.app.dispatcher.release_own_claims()
        for running in self.channels.values():
            if running.start is not None:
                log.info(await running.start())
            self._started.append(running)
        for name, dispatcher in self.app.dispatcher.channels.items():
            self.supervisor.start(f"dispatcher.{name}", dispatcher.run)
        for running in self.channels.values():
            for name, loop in running.loops.items():
                self.supervisor.start(name, loop)

        self.supervisor.start("scheduler", self.scheduler.run)
        if self.staff is not None:
            await self.staff.start()
            self.supervisor.start("staff.progress", self.staff.follow)

    async def stop(self) -> None:
        """Updates being handled finish first (their replies are queued), then every loop
        stops taking work and finishes or gives back what it holds."""
        for running in self._started:
            if running.stop is not None:
                await running.stop()
        await self.supervisor.stop(timeout=self.app.settings.shutdown_seconds)

    async def serve(self) -> None:
        """Start everything, serve HTTP until SIGINT or SIGTERM, then stop cleanly."""
        import uvicorn

        settings = self.app.settings
        logging.getLogger("votz").setLevel(logging.INFO)
        server = uvicorn.Server(uvicorn.Config(
            self.web, host=settings.http_host, port=settings.http_port, log_level="warning",
            access_log=False, lifespan="off",
            timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds / 2))))
        signalled: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Installed before uvicorn's own handlers, which it restores when it has shut
            # down and then re-raises the signal: it lands here, and shutdown continues.
            signalled.append(signum)
            server.should_exit = True

        previous: dict[int, Any] = {
            signum: signal.signal(signum, on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)}
        _check_port(settings.http_host, settings.http_port)  # before anything starts
        errors = ErrorCounter(self.app.metrics)  # votz_log_errors_total
        logging.getLogger().addHandler(errors)
        thresholds = gc.get_threshold()
        try:
            # What startup made lives as long as the process: kept out of the garbage
            # collector's full passes, which walked it all and stopped the event loop for
            # 150-250 ms (measured: the dispatcher's send slots of those moments were lost).
            # Done before the channels start: once Telegram's webhook is registered, updates
            # may come at once, and HTTP serves right after.
            gc.collect()
            gc.freeze()
            await self.start()
            # What starting made (the channels, the catalog) too, without a collection: no
            # wait here, and what of it was already garbage stays, once. Then full passes
            # are rarer (one per 100 middle ones instead of 10): at 1,000 messages a second
            # each took 11-20 ms, every 7 s or so, and the slots of those moments were lost
            # (bench/broadcast.py); what the young passes free is freed as before.
            gc.freeze()
            gc.set_threshold(*gc.get_threshold()[:2], FULL_PASS_EVERY)
            if not self.channels:
                log.warning("run.no_channel: set VOTZ_TWILIO_* (SMS) or VOTZ_TELEGRAM_TOKEN")
            log.info("http.started url=http://%s:%s instance=%s", settings.http_host,
                     settings.http_port, settings.instance_name)
            await server.serve()
        finally:
            log.info("run.stopping signal=%s", signalled[0] if signalled else None)
            await self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            log.info("run.stopped")
            logging.getLogger().removeHandler(errors)
            gc.set_threshold(*thresholds)
