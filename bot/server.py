"""The one composition root of a Votz process (`votz run`, and the tests that run one).

    settings ─> App (database, migrations, catalog, pipeline, dispatcher)
             ─> channels the settings configure, from the registry (sender, routes, loops)
             ─> web app (health, metrics, the channels' routes) under uvicorn
             ─> long-running tasks: dispatcher, catalog refresh (bot.scheduling)

`Server.open` builds it (and closes it on leaving); `serve` runs it until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from bot.app import App
from bot.channels import registry
from bot.channels.base import Running
from bot.config import Settings
from bot.conversation.pipeline import Clock, utcnow
from bot.scheduling.catalog import refresh_catalog_every
from bot.web import create_web_app

log = logging.getLogger("votz.run")


class Server:
    """An `App` with its channels running and its web app built."""

    def __init__(self, app: App, channels: dict[str, Running], web: Starlette) -> None:
        self.app = app
        self.channels = channels
        self.web = web

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
                routes = [route for running in channels.values() for route in running.routes]
                yield cls(app, channels, create_web_app(app, routes))
            finally:
                for running in channels.values():
                    await running.sender.close()

    async def serve(self) -> None:
        """Start the channels and the tasks, serve HTTP until a signal, then stop cleanly."""
        import uvicorn

        settings = self.app.settings
        logging.getLogger("votz").setLevel(logging.INFO)
        server = uvicorn.Server(uvicorn.Config(
            self.web, host=settings.http_host, port=settings.http_port, log_level="warning",
            access_log=False, lifespan="off"))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.app.dispatcher.run(stop)),
                 asyncio.create_task(refresh_catalog_every(self.app, stop))]
        started = []
        try:
            for running in self.channels.values():
                if running.start is not None:
                    log.info(await running.start())
                started.append(running)
            if not self.channels:
                log.warning("run.no_channel: set VOTZ_TWILIO_* (SMS) or VOTZ_TELEGRAM_TOKEN")
            log.info("http.started url=http://%s:%s", settings.http_host, settings.http_port)
            await server.serve()
        finally:
            stop.set()
            for running in started:
                if running.stop is not None:
                    await running.stop()
            self.app.dispatcher.wake()
            await asyncio.gather(*tasks, return_exceptions=True)
