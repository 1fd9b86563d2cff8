"""The one HTTP app (Starlette, served by uvicorn): health, metrics, and each channel's routes.

    GET  /healthz           liveness and database check
    GET  /metrics           Prometheus metrics (bot/metrics.py)
    ...                     what each running channel serves (`Running.routes`):
                            POST /sms/inbound, POST /sms/status, POST /telegram/webhook
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Connection, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.app import App
from bot.channels import registry
from bot.delivery.outbox import count_by_status, oldest_due

log = logging.getLogger("votz.web")


Health = Callable[[], Awaitable[list[str]]]
Details = Callable[[], dict[str, Any]]


def create_web_app(app: App, routes: Sequence[BaseRoute] = (), *,
                   health: Health | None = None, details: Details | None = None) -> Starlette:
    """The web app of one Votz process: its own pages and the channels' `routes`.

    `health` says what is wrong (a task failing, the database, the outbox late); without
    it, /healthz only checks that the database answers. `details` adds what is worth
    seeing either way (the scheduler's last tick).
    """
    metrics = app.metrics

    async def database_answers() -> list[str]:
        await app.db.run(lambda conn: conn.execute(select(1)).scalar())
        return []

    check = health or database_answers

    async def healthz(request: Request) -> Response:
        problems = await check()
        extra = details() if details is not None else {}
        if problems:
            log.warning("health.unhealthy problems=%s", "; ".join(problems))
            return JSONResponse({"status": "unhealthy", "problems": problems, **extra},
                                status_code=503)
        return JSONResponse({"status": "ok", **extra})

    async def metrics_page(request: Request) -> Response:
        now = app.clock()
        channels = registry.names()

        def read(conn: Connection) -> tuple[dict[str, int], dict[str, datetime | None]]:
            return count_by_status(conn), {
                "reply": oldest_due(conn, channels, now),
                "bulk": oldest_due(conn, channels, now, bulk=True)}

        counts, oldest = await app.db.run(read)
        metrics.outbox_state(counts, oldest, now)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    web = Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics_page),
                            *routes])
    web.state.metrics = metrics
    return web
