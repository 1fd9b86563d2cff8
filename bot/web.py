"""The one HTTP app (Starlette, served by uvicorn): health, metrics, and each channel's routes.

    GET  /healthz           liveness and database check
    GET  /metrics           counters in the Prometheus text format
    ...                     what each running channel serves (`Running.routes`):
                            POST /sms/inbound, POST /sms/status, POST /telegram/webhook
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.app import App
from bot.delivery.outbox import count_by_status

log = logging.getLogger("votz.web")


def create_web_app(app: App, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The web app of one Votz process: its own pages and the channels' `routes`."""
    metrics = app.metrics

    async def healthz(request: Request) -> Response:
        await app.db.run(lambda conn: conn.execute(select(1)).scalar())
        return JSONResponse({"status": "ok"})

    async def metrics_page(request: Request) -> Response:
        lines = [f"votz_{name} {value}" for name, value in sorted(metrics.items())]
        for status, n in sorted((await app.db.run(count_by_status)).items()):
            lines.append(f'votz_outbox_messages{{status="{status}"}} {n}')
        return PlainTextResponse("\n".join(lines) + "\n")

    web = Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics_page),
                            *routes])
    web.state.metrics = metrics
    return web
