"""The SMS channel over Twilio: phone numbers, rendering for cost, and the sender.

Inbound SMS arrive on `POST /sms/inbound` (see `bot.web`); replies leave through the outbox
and `TwilioSender`, the official SDK's async client (`messages.create_async`).
"""

from __future__ import annotations

import logging

import aiohttp
import phonenumbers
from phonenumbers import PhoneNumberType
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.channels.aiohttp_request import env_proxy
from bot.channels.base import (
    PermanentSendError,
    Reply,
    SendResult,
    TransientSendError,
    numbered,
)
from bot.channels.gsm7 import cost, sms_safe
from bot.config import Settings

CHANNEL = "sms"
OPTED_OUT = 21610  # Twilio: "Attempt to send to unsubscribed recipient"
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


def segments(reply: Reply) -> int:
    return cost(render(reply)).segments


class TwilioSender:
    """Sends replies with the twilio SDK; Twilio errors become transient or permanent."""

    channel = CHANNEL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        api = settings.twilio_api_url or "https://api.twilio.com"
        http = AsyncTwilioHttpClient(pool_connections=False, timeout=10)
        # twilio 9.13's async client keeps a proxy_url but never passes it on; its session is
        # ours instead, reading HTTP(S)_PROXY itself when the environment names one (that
        # lookup costs a thread hop per request, so only then).
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
            message = await self.client.messages.create_async(**kwargs)
        except TwilioRestException as exc:
            reason = f"twilio {exc.status} {exc.code}: {exc.msg}"[:250]
            if exc.code == OPTED_OUT:
                raise PermanentSendError(reason, stop=True) from None
            if exc.status == 429 or exc.status >= 500:
                raise TransientSendError(reason) from None
            raise PermanentSendError(reason) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientSendError(f"network: {type(exc).__name__} {exc}"[:250]) from None
        return SendResult(provider_id=message.sid)

    async def close(self) -> None:
        http = self.client.http_client
        if isinstance(http, AsyncTwilioHttpClient):
            await http.close()
