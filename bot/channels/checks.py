"""What `votz doctor` asks each provider before going live: the credentials work, and the
provider calls Votz where Votz listens. Each check says, in plain words, what to fix."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urldefrag

from bot.config import Settings


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"  # worth fixing; does not stop going live
    FAIL = "fail"  # blocks going live


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    what: str  # "Telegram token", "database"
    text: str  # what was found, and how to fix it when it is wrong


Check = Callable[[Settings], Awaitable[list[Finding]]]


async def telegram(settings: Settings) -> list[Finding]:
    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.channels.telegram import make_bot

    bot = make_bot(settings)
    found: list[Finding] = []
    try:
        try:
            await bot.initialize()  # asks getMe
            me = bot.bot
        except InvalidToken:
            return [Finding(Level.FAIL, "Telegram token", "Telegram refuses the token: ask "
                            "@BotFather for the bot's token (/mybots → API Token) and set "
                            "VOTZ_TELEGRAM_TOKEN")]
        except NetworkError as exc:
            where = settings.telegram_api_url or "api.telegram.org"
            return [Finding(Level.FAIL, "Telegram", f"cannot reach {where} ({exc.message}): "
                            "check the network, HTTPS_PROXY, or VOTZ_TELEGRAM_API_URL")]
        found.append(Finding(Level.OK, "Telegram token", f"the bot is @{me.username}"))
        info = await bot.get_webhook_info()
        expected = settings.public_url.rstrip("/") + "/telegram/webhook"
        if settings.telegram_mode == "webhook":
            if info.url == expected:
                found.append(Finding(Level.OK, "Telegram webhook", f"points at {expected}"))
            else:
                found.append(Finding(Level.WARN, "Telegram webhook", (
                    f"points at {info.url or 'nothing'}; `votz run` registers {expected} when "
                    "it starts (check that this address reaches Votz through your proxy)")))
            if info.last_error_message:
                found.append(Finding(Level.WARN, "Telegram webhook", (
                    f"Telegram's last delivery error: {info.last_error_message}")))
        elif info.url:
            found.append(Finding(Level.WARN, "Telegram webhook", (
                f"a webhook is set ({info.url}) but VOTZ_TELEGRAM_MODE=polling: `votz run` "
                "removes it; set VOTZ_TELEGRAM_MODE=webhook if another process serves it")))
        else:
            found.append(Finding(Level.OK, "Telegram mode", "polling (one process only)"))
    except TelegramError as exc:
        found.append(Finding(Level.FAIL, "Telegram", f"Telegram answered: {exc.message}"))
    finally:
        await bot.shutdown()
    return found


def _twilio_findings(settings: Settings) -> list[Finding]:
    from twilio.base.exceptions import TwilioException, TwilioRestException
    from twilio.rest import Client

    client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
    if settings.twilio_api_url:
        client.api.base_url = settings.twilio_api_url.rstrip("/")
    inbound = settings.public_url.rstrip("/") + "/sms/inbound"
    try:
        account = client.api.v2010.accounts(settings.twilio_account_sid).fetch()
    except TwilioRestException as exc:
        if exc.status in (401, 403, 404):
            return [Finding(Level.FAIL, "Twilio credentials", (
                "Twilio refuses the account SID and auth token: copy them from the Twilio "
                "console (Account info) into VOTZ_TWILIO_ACCOUNT_SID and VOTZ_TWILIO_AUTH_TOKEN"
            ))]
        return [Finding(Level.FAIL, "Twilio", f"Twilio answered {exc.status}: {exc.msg}")]
    except (TwilioException, OSError) as exc:
        return [Finding(Level.FAIL, "Twilio", f"cannot reach Twilio ({exc}): check the network "
                        "or VOTZ_TWILIO_API_URL")]
    found = [Finding(Level.OK, "Twilio credentials",
                     f"account {account.friendly_name!r} ({account.status})")]
    if account.status != "active":
        found.append(Finding(Level.FAIL, "Twilio account", f"the account is {account.status}"))
    if settings.twilio_messaging_service_sid:
        service = client.messaging.v1.services(settings.twilio_messaging_service_sid).fetch()
        url = urldefrag(service.inbound_request_url or "").url
        if service.use_inbound_webhook_on_number:
            found.append(Finding(Level.WARN, "Twilio sender", (
                "the Messaging Service uses each number's own incoming webhook: set "
                f"{inbound} on every number of the service")))
        elif url != inbound:
            found.append(Finding(Level.FAIL, "Twilio sender", (
                f"the Messaging Service's incoming webhook is {url or 'not set'}: set it to "
                f"{inbound}#rc=3&rp=5xx,rt,ct (POST), or replies never reach Votz")))
        else:
            found.append(Finding(Level.OK, "Twilio sender", "the Messaging Service sends "
                                 f"incoming messages to {inbound}"))
        return found
    numbers = client.incoming_phone_numbers.list(phone_number=settings.twilio_from, limit=1)
    if not numbers:
        found.append(Finding(Level.FAIL, "Twilio sender", (
            f"{settings.twilio_from} is not a number of this account, so people's answers "
            "cannot reach Votz: buy or port a French mobile number and set VOTZ_TWILIO_FROM")))
        return found
    number = numbers[0]
    url = urldefrag(number.sms_url or "").url
    if not (number.capabilities or {}).get("sms", False):
        found.append(Finding(Level.FAIL, "Twilio sender",
                             f"{settings.twilio_from} cannot send or receive SMS"))
    elif url != inbound or (number.sms_method or "POST").upper() != "POST":
        found.append(Finding(Level.FAIL, "Twilio sender", (
            f"incoming messages to {settings.twilio_from} go to {url or 'nowhere'}: set "
            f"'A message comes in' to POST {inbound}#rc=3&rp=5xx,rt,ct")))
    else:
        found.append(Finding(Level.OK, "Twilio sender",
                             f"{settings.twilio_from} receives SMS at {inbound}"))
    return found


async def sms(settings: Settings) -> list[Finding]:
    return await asyncio.to_thread(_twilio_findings, settings)


CHECKS: dict[str, Check] = {"telegram": telegram, "sms": sms}


def calls_votz(name: str, settings: Settings) -> bool:
    """Whether the provider of this channel calls Votz (so it needs VOTZ_PUBLIC_URL)."""
    return name == "sms" or (name == "telegram" and settings.telegram_mode == "webhook")
