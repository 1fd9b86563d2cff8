"""The SMS channel over Twilio: phone numbers, rendering for cost, webhooks and the sender.

    POST /sms/inbound   Twilio inbound SMS (X-Twilio-Signature checked) → `Inbound`
    POST /sms/status    Twilio delivery reports (signature checked) → `DeliveryReport`

Replies leave through the outbox and `TwilioSender`, the official SDK's async client
(`messages.create_async`); Twilio only ever gets an empty TwiML answer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import aiohttp
import phonenumbers
from phonenumbers import PhoneNumberType
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels.aiohttp_request import env_proxy
from bot.channels.base import (
    Capabilities,
    Channel,
    DeliveryReport,
    DeliveryState,
    Host,
    Inbound,
    PermanentSendError,
    Reply,
    Running,
    SendResult,
    TransientSendError,
    error_summary,
    mask_address,
    numbered,
)
from bot.channels.gsm7 import SmsCost, cost, sms_safe
from bot.config import Settings
from bot.domain.participants import Status
from bot.errors import ConfigError

CHANNEL = "sms"
OPTED_OUT = 21610  # Twilio: "Attempt to send to unsubscribed recipient"
# Twilio answers 429 (error 20429) without a Retry-After: every process pauses SMS this long.
TOO_MANY_PAUSE = 1.0
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_FORM_BYTES = 64 * 1024
log = logging.getLogger("votz.sms")

_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalise_number(raw: str, *, region: str = "FR") -> str | None:
    """E.164 form of a mobile number (06 12 34 56 78 → +33612345678), else None."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in _MOBILE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def render(reply: Reply) -> str:
    """The SMS body: numbered options, typography made GSM-7 where it can be."""
    return sms_safe(numbered(reply))


def measure(reply: Reply) -> SmsCost:
    """Encoding and segments of the SMS this reply becomes."""
    return cost(render(reply))


def segments(reply: Reply) -> int:
    return measure(reply).segments


# Twilio's message statuses, in Votz's words (the others are steps on the way).
_DELIVERY_STATES = {
    "delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
}


def delivery_report(params: dict[str, str]) -> DeliveryReport:
    """A status callback's form as a typed report (error 21610: the person opted out)."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    code = params.get("ErrorCode") or None
    state = _DELIVERY_STATES.get(status, DeliveryState.PENDING)
    reason = f"provider {status} {code or ''}".strip() if state is DeliveryState.FAILED else None
    stopped = Status.STOPPED if code == str(OPTED_OUT) else None
    return DeliveryReport(sid, state, reason=reason, participant_status=stopped)


def inbound_message(params: dict[str, str], *, received_at: datetime) -> Inbound | None:
    """An inbound SMS's form as an `Inbound`; None when the sender is not a mobile number."""
    sender = normalise_number(params.get("From", ""))
    if sender is None:
        return None
    opt_out = (params.get("OptOutType") or "").upper() or None
    return Inbound(channel=CHANNEL, address=sender, text=params.get("Body", ""),
                   provider_id=params.get("MessageSid") or None, opt_out=opt_out,
                   received_at=received_at)


class TwilioSender:
    """Sends replies with the twilio SDK; Twilio errors become transient or permanent."""

    channel = CHANNEL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        api = settings.twilio_api_url or "https://api.twilio.com"
        http = AsyncTwilioHttpClient(pool_connections=False,
                                     timeout=settings.send_timeout_seconds)
        # twilio 9.13's async client keeps a proxy_url but never passes it on; its session is
        # ours instead, reading HTTP(S)_PROXY itself when the environment names one (that
        # lookup costs a thread hop per request, so only then). It also passes timeout=None
        # to each request, which aiohttp reads as "no timeout": `send` bounds the call.
        self.timeout = settings.send_timeout_seconds
        http.session = aiohttp.ClientSession(trust_env=env_proxy(api) is not None)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                             http_client=http)
        if settings.twilio_api_url:
            self.client.api.base_url = settings.twilio_api_url.rstrip("/")
        self.status_callback = (settings.public_url.rstrip("/") + "/sms/status"
                                if settings.public_url else None)
        self.rate = settings.twilio_segments_per_second

    def cost(self, reply: Reply) -> int:
        return segments(reply)

    async def send(self, address: str, reply: Reply) -> SendResult:
        kwargs: dict[str, object] = {"to": address, "body": render(reply)}
        if self.settings.twilio_messaging_service_sid:
            kwargs["messaging_service_sid"] = self.settings.twilio_messaging_service_sid
        else:
            kwargs["from_"] = self.settings.twilio_from
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            async with asyncio.timeout(self.timeout):
                message = await self.client.messages.create_async(**kwargs)
        except TwilioRestException as exc:
            # Twilio's message often quotes the number ("The 'To' number +336… is not…"),
            # and this reason is logged and stored.
            reason = mask_address(f"twilio {exc.status} {exc.code}: {exc.msg}")[:250]
            if exc.code == OPTED_OUT:
                raise PermanentSendError(reason, participant_status=Status.STOPPED) from None
            if exc.status == 429:  # 20429: over the account's rate; no Retry-After given
                raise TransientSendError(reason, retry_after=TOO_MANY_PAUSE) from None
            if exc.status >= 500:
                raise TransientSendError(reason) from None
            raise PermanentSendError(reason) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientSendError(f"network: {type(exc).__name__} {exc}"[:250]) from None
        return SendResult(provider_id=message.sid)

    async def close(self) -> None:
        http = self.client.http_client
        if isinstance(http, AsyncTwilioHttpClient):
            await http.close()


class SmsWebhooks:
    """Twilio's webhooks: every request is signed with the account's auth token."""

    def __init__(self, settings: Settings, host: Host) -> None:
        self.host = host
        self.metrics = host.metrics
        self.validator = RequestValidator(settings.twilio_auth_token)
        self.public_url = settings.public_url.rstrip("/")

    def routes(self) -> list[Route]:
        return [Route("/sms/inbound", self.inbound, methods=["POST"]),
                Route("/sms/status", self.status, methods=["POST"])]

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
        message = inbound_message(params, received_at=self.host.clock())
        if message is None:
            self.metrics["sms_not_mobile_total"] += 1
            log.info("sms.inbound.not_mobile sid=%s", params.get("MessageSid"))
            return Response(EMPTY_TWIML, media_type="application/xml")
        try:
            handled = await self.host.handle(message)
        except Exception as exc:
            # Not stored (the database is locked or unreachable): an error answer makes
            # Twilio retry when the webhook URL asks it to (see README); the retry is
            # processed once, by its MessageSid.
            self.metrics["sms_not_stored_total"] += 1
            log.error("sms.inbound.not_stored sid=%s error=%s", params.get("MessageSid"),
                      error_summary(exc))
            return PlainTextResponse("not stored, try again", status_code=503,
                                     headers={"Retry-After": "5"})
        self.metrics["sms_duplicate_total" if handled.duplicate else "sms_inbound_total"] += 1
        # The reply goes through the outbox; Twilio only gets an empty TwiML answer.
        return Response(EMPTY_TWIML, media_type="application/xml")

    async def status(self, request: Request) -> Response:
        params = await self.verified_form(request)
        if params is None:
            return PlainTextResponse("forbidden", status_code=403)
        report = delivery_report(params)
        found = await self.host.report(report)
        self.metrics["sms_status_total"] += 1
        if not found:
            log.info("sms.status.unknown sid=%s state=%s", report.provider_id, report.state)
        return Response(status_code=204)


def _configured(settings: Settings) -> bool:
    if not (settings.twilio_account_sid or settings.twilio_auth_token):
        return False
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise ConfigError("set both VOTZ_TWILIO_ACCOUNT_SID and VOTZ_TWILIO_AUTH_TOKEN")
    if not (settings.twilio_from or settings.twilio_messaging_service_sid):
        raise ConfigError("set VOTZ_TWILIO_FROM or VOTZ_TWILIO_MESSAGING_SERVICE_SID")
    return True


def _open(settings: Settings, host: Host) -> Running:
    webhooks = SmsWebhooks(settings, host)

    async def started() -> str:
        sender = settings.twilio_messaging_service_sid or settings.twilio_from
        base = settings.public_url or f"http://{settings.http_host}:{settings.http_port}"
        return f"channel.sms.started from={sender} inbound={base.rstrip('/')}/sms/inbound"

    return Running(TwilioSender(settings), webhooks.routes(), start=started)


CHANNEL_SPEC = Channel(
    CHANNEL,
    # A number is verified by the network; every reply fits 2 segments (long lists: pages).
    Capabilities(page_segments=2, verified_address=True),
    normalise_address=normalise_number,
    measure=measure,
    configured=_configured,
    open=_open,
)
