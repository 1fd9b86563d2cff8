"""The application core: settings → catalogs, flows, engine, database, pipeline, dispatcher.

`async with App.open(settings) as app:` is how every `votz` command and test gets one; the
server (`bot.server`) adds channels, the web app and the long-running tasks around it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path

from bot.campaign_files import read_campaigns
from bot.channels import registry
from bot.channels.base import DeliveryReport, Inbound, Sender
from bot.config import Settings
from bot.conversation.actions import BEHAVIOUR, REGISTRY
from bot.conversation.engine import Engine, EngineSettings
from bot.conversation.flows import FlowSet, load_flows
from bot.conversation.pipeline import Clock, Handled, Pipeline, utcnow
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.outbox import apply_delivery_report
from bot.delivery.windows import windows_from_settings
from bot.domain.campaigns import PARIS
from bot.i18n import I18n
from bot.metrics import Metrics
from bot.scheduling.events import plan
from bot.store.db import Database
from bot.store.migrate import migrate
from bot.store.repo import (
    SaveReport,
    Tallies,
    get_campaign,
    load_catalog,
    save_campaign,
)


def load_engine(i18n: I18n, flows_dir: Path | None = None) -> tuple[FlowSet, Engine]:
    flows = load_flows(flows_dir, registry=REGISTRY, has_translation=i18n.has)
    return flows, Engine(flows, BEHAVIOUR)


class App:
    """Everything one Votz process needs, wired once; also the `Host` channels talk to."""

    def __init__(self, settings: Settings, db: Database, i18n: I18n, pipeline: Pipeline,
                 dispatcher: Dispatcher, clock: Clock, metrics: Metrics | None = None
                 ) -> None:
        self.settings = settings
        self.db = db
        self.i18n = i18n
        self.pipeline = pipeline
        self.dispatcher = dispatcher
        self.clock = clock
        self.metrics = metrics if metrics is not None else Metrics()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, *, senders: Mapping[str, Sender] | None = None,
                   clock: Clock = utcnow, schema: str | None = None) -> AsyncIterator[App]:
        """The app, its schema migrated and its catalog loaded; closed on leaving."""
        app = await cls.start(settings, senders=senders, clock=clock, schema=schema)
        try:
            yield app
        finally:
            await app.close()

    @classmethod
    async def start(cls, settings: Settings, *, senders: Mapping[str, Sender] | None = None,
                    clock: Clock = utcnow, schema: str | None = None) -> App:
        i18n = I18n(default=settings.default_locale)
        _, engine = load_engine(i18n)
        db = Database(settings.database_url, schema=schema,
                      busy_seconds=settings.sqlite_busy_seconds,
                      application_name=f"votz {settings.instance_name}")
        try:
            await migrate(db)
            tallies = Tallies()  # kept between reloads of the catalog, by the pipeline too
            catalog = await db.run(lambda conn: load_catalog(conn, clock(), tallies))
        except BaseException:
            await db.close()
            raise
        engine_settings = EngineSettings(
            privacy_url=settings.privacy_url, contact=settings.contact,
            idle_timeout=timedelta(hours=settings.idle_timeout_hours),
        )
        for name in senders or {}:  # imported now, not while the first message waits
            registry.channel(name)
        windows = windows_from_settings(settings)
        metrics = Metrics()
        dispatcher = Dispatcher(db, senders or {}, clock, instance=settings.instance_name,
                                metrics=metrics,
                                windows=windows)
        pipeline = Pipeline(db, engine, i18n, engine_settings, catalog, clock=clock,
                            default_locale=settings.default_locale, on_queued=dispatcher.wake,
                            tallies=tallies)
        return cls(settings, db, i18n, pipeline, dispatcher, clock, metrics)

    async def handle(self, inbound: Inbound) -> Handled:
        """An inbound message, from any channel, through the pipeline."""
        handled = await self.pipeline.handle(inbound)
        self.metrics.inbound.labels(inbound.channel,
                                    "duplicate" if handled.duplicate else "handled").inc()
        return handled

    async def report(self, report: DeliveryReport) -> bool:
        """A provider's delivery report; False when no message has its provider id."""
        now = self.clock()
        return await self.db.run(lambda conn: apply_delivery_report(conn, report, now))

    def today(self) -> date:
        return self.clock().astimezone(PARIS).date()

    async def load_campaigns(self, path: Path, *, actor: str = "votz") -> list[SaveReport]:
        """Validate and store campaign files; plan (or reschedule) their events in the same
        transaction."""
        now: datetime = self.clock()
        campaigns = read_campaigns(path, today=self.today(), now=now)
        grace = timedelta(hours=self.settings.reminder_grace_hours)

        def save_all(conn):  # type: ignore[no-untyped-def]
            reports = []
            for campaign in campaigns:
                report = save_campaign(conn, campaign, now)
                plan(conn, get_campaign(conn, campaign.slug), now, grace=grace, actor=actor)
                reports.append(report)
            return reports

        reports: list[SaveReport] = await self.db.run(save_all)
        await self.refresh_catalog()
        return reports

    async def refresh_catalog(self) -> None:
        now = self.clock()
        self.pipeline.catalog = await self.db.run(
            lambda conn: load_catalog(conn, now, self.pipeline.tallies))

    async def close(self) -> None:
        await self.db.close()
