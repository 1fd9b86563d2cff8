"""The one HTTP server: provider webhooks, health and metrics (Starlette, served by uvicorn).

    POST /sms/inbound       Twilio inbound SMS (X-Twilio-Signature checked)
    POST /sms/status        Twilio delivery reports (signature checked)
    POST /telegram/webhook  Telegram updates (secret token checked), in webhook mode
    GET  /healthz           liveness and database check
    GET  /metrics           counters in the Prometheus text format
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from bot.app import App
from bot.channels.base import Inbound
from bot.channels.sms import CHANNEL as SMS
from bot.channels.sms import normalise_number
from bot.channels.telegram import TelegramReceiver
from bot.delivery.outbox import apply_provider_status
from bot.store.tables import outbox

log = logging.getLogger("votz.web")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_FORM_BYTES = 64 * 1024


class SmsWebhooks:
    """Twilio's webhooks: every request is signed with the account's auth token."""

    def __init__(self, app: App, metrics: Counter[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.validator = RequestValidator(app.settings.twilio_auth_token)
        self.public_url = app.settings.public_url.rstrip("/")

    def signed_url(self, request: Request) -> str:
        """The URL Twilio signed: the public one (behind a proxy), path and query included."""
        if not self.public_url:
            return str(request.url)
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{self.public_url}{request.url.path}{query}"

    async def verified_form(self, request: Request) -> dict[str, str] | None:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_FORM_BYTES:
            return None
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not self.validator.validate(self.signed_url(request), params,
                                                        signature):
            self.metrics["sms_signature_invalid_total"] += 1
            log.warning("sms.webhook.signature_invalid path=%s from=%s", request.url.path,
                        request.client.host if request.client else "?")
            return None
        return params

    async def inbound(self, request: Request) -> Response:
        params = await self.verified_form(request)
        if params is None:
            return PlainTextResponse("forbidden", status_code=403)
        sender = normalise_number(params.get("From", ""))
        if sender is None:
            self.metrics["sms_not_mobile_total"] += 1
            log.info("sms.inbound.not_mobile sid=%s", params.get("MessageSid"))
            return Response(EMPTY_TWIML, media_type="application/xml")
        opt_out = (params.get("OptOutType") or "").upper() or None
        handled = await self.app.pipeline.handle(Inbound(
            channel=SMS, address=sender, text=params.get("Body", ""),
            provider_id=params.get("MessageSid") or None, opt_out=opt_out,
            received_at=self.app.clock(),
        ))
        self.metrics["sms_duplicate_total" if handled.duplicate else "sms_inbound_total"] += 1
        # The reply goes through the outbox; Twilio only gets an empty TwiML answer.
        return Response(EMPTY_TWIML, media_type="application/xml")

    async def status(self, request: Request) -> Response:
        params = await self.verified_form(request)
        if params is None:
            return PlainTextResponse("forbidden", status_code=403)
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        code = params.get("ErrorCode") or None
        clock = self.app.clock
        found = await self.app.db.run(
            lambda conn: apply_provider_status(conn, sid, status, code, clock()))
        self.metrics["sms_status_total"] += 1
        if not found:
            log.info("sms.status.unknown sid=%s status=%s", sid, status)
        return Response(status_code=204)


def create_web_app(app: App, *, telegram: TelegramReceiver | None = None) -> Starlette:
    metrics: Counter[str] = Counter()
    routes: list[Route] = []

    async def healthz(request: Request) -> Response:
        await app.db.run(lambda conn: conn.execute(select(1)).scalar())
        return JSONResponse({"status": "ok"})

    async def metrics_page(request: Request) -> Response:
        def counts(conn: Any) -> dict[str, int]:
            rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
            return {status: n for status, n in rows}

        lines = [f"votz_{name} {value}" for name, value in sorted(metrics.items())]
        for status, n in sorted((await app.db.run(counts)).items()):
            lines.append(f'votz_outbox_messages{{status="{status}"}} {n}')
        return PlainTextResponse("\n".join(lines) + "\n")

    routes += [Route("/healthz", healthz), Route("/metrics", metrics_page)]
    if app.settings.twilio_auth_token:
        sms = SmsWebhooks(app, metrics)
        routes += [Route("/sms/inbound", sms.inbound, methods=["POST"]),
                   Route("/sms/status", sms.status, methods=["POST"])]
    if telegram is not None:
        receiver = telegram

        async def telegram_webhook(request: Request) -> Response:
            if not receiver.secret_ok(request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
                metrics["telegram_secret_invalid_total"] += 1
                log.warning("telegram.webhook.secret_invalid from=%s",
                            request.client.host if request.client else "?")
                return PlainTextResponse("forbidden", status_code=403)
            try:
                data = await request.json()
            except ValueError:
                return PlainTextResponse("bad request", status_code=400)
            await receiver.webhook_update(data)
            metrics["telegram_updates_total"] += 1
            return Response(status_code=200)

        routes.append(Route("/telegram/webhook", telegram_webhook, methods=["POST"]))
    web = Starlette(routes=routes)
    web.state.metrics = metrics
    return web
