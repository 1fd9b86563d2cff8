"""The Telegram channel on python-telegram-bot, used as a transport (not as the framework).

Updates (long polling, or `POST /telegram/webhook` with the secret token) become `Inbound`
messages for the same pipeline as SMS; replies leave through the outbox as `sendMessage`
calls with inline keyboards whose callback data is `TURN:CHOICE_ID` — the same choice ids as
SMS numbers, plus the turn, so a button from an earlier message is recognised as stale. A
reply that replaces the pressed message (a selection's ticks) is an `editMessageText`; a
reply sent as a new message first takes the pressed message's buttons away, in the outbox's
order (after that message's edits still queued, which would bring them back); a press
refused with a short notice is answered by `answerCallbackQuery` alone. Private chats
only: a group or a channel gets one pointer to a private chat, sent at once, never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.channels.aiohttp_request import AiohttpRequest
from bot.channels.base import (
    Accepted,
    Capabilities,
    Channel,
    Host,
    Inbound,
    PermanentSendError,
    Reply,
    Running,
    SendResult,
    TransientSendError,
    error_summary,
    mask_address,
)
from bot.channels.sms import normalise_number
from bot.config import Settings
from bot.domain.participants import Status
from bot.errors import ConfigError
from bot.i18n import LOCALES, N_, I18n

# PTB 22 moves durations to timedelta; opt in now rather than be warned on every 429.
os.environ.setdefault("PTB_TIMEDELTA", "1")

CHANNEL = "telegram"
FREE_PER_SECOND = 30.0  # Telegram's limit on messages that are not paid broadcasts
MAX_TEXT = 4096
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
MAX_UPDATE_ATTEMPTS = 5  # an update failing this often while others pass is given up
MAX_WEBHOOK_BYTES = 1024 * 1024  # Telegram's updates are a few KB; 1 MiB is generous
log = logging.getLogger("votz.telegram")
# TelegramSender calls sendMessage through `Bot.do_api_request` for its raw answer, which PTB
# warns about for a method it has: deliberate here.
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.send_message'")

# The command menu, per language: command → the keyword it sends to the conversation.
COMMANDS = {
    "start": "START", "campagnes": "CAMPAGNES", "proposer": "PROPOSER", "voter": "VOTE",
    "aide": "AIDE", "langue": "LANGUE", "mesdonnees": "MESDONNEES", "stop": "STOP",
}
COMMAND_HELP = {
    "start": N_("telegram.cmd.start"), "campagnes": N_("telegram.cmd.campaigns"),
    "proposer": N_("telegram.cmd.propose"), "voter": N_("telegram.cmd.vote"),
    "aide": N_("telegram.cmd.help"), "langue": N_("telegram.cmd.language"),
    "mesdonnees": N_("telegram.cmd.mydata"), "stop": N_("telegram.cmd.stop"),
}


def api_root(url: str) -> str:
    """A Bot API server's root from `VOTZ_TELEGRAM_API_URL`: the root as given
    (`http://host:8081`), or python-telegram-bot's form without its `/bot`
    (`http://host:8081/bot`)."""
    return url.strip().rstrip("/").removesuffix("/bot").rstrip("/")


def make_bot(settings: Settings) -> Bot:
    base = api_root(settings.telegram_api_url) if settings.telegram_api_url else ""
    kwargs: dict[str, Any] = {}
    if base:
        kwargs = {"base_url": f"{base}/bot", "base_file_url": f"{base}/file/bot"}
    # PTB's networking on aiohttp (its documented BaseRequest extension point), not httpx;
    # as many connections as the dispatcher has sends under way.
    pool = max(8, sends_at_once(settings.telegram_messages_per_second,
                                paid_broadcast=settings.telegram_paid_broadcast))
    return Bot(settings.telegram_token,
               request=AiohttpRequest(connection_pool_size=pool, read_timeout=15),
               get_updates_request=AiohttpRequest(connection_pool_size=1, read_timeout=40),
               **kwargs)


def sends_at_once(rate: float, *, paid_broadcast: bool) -> int:
    """Sends under way at once the dispatcher needs to keep up with paid broadcasts (a
    send and the write of its outcome take tens of milliseconds: 50 at 1,000/s); 0, the
    dispatcher's default (4), otherwise. A crash may repeat that many sends."""
    return min(64, math.ceil(rate * 0.05)) if paid_broadcast else 0


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long text at paragraph, line or word boundaries into parts Telegram accepts."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit))
        if cut <= 0:
            cut = text.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return [p for p in parts if p] or [""]


def keyboard(reply: Reply) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    if reply.ask_contact:
        return ReplyKeyboardMarkup([[KeyboardButton(reply.ask_contact, request_contact=True)]],
                                   one_time_keyboard=True, resize_keyboard=True)
    if not reply.choices:
        return None
    # Proposals show their code, as on posters and in SMS.
    rows = [[InlineKeyboardButton(f"{c.code} {c.label}" if c.code else c.label,
                                  callback_data=button_data(reply.turn, c.id))]
            for c in reply.choices]
    return InlineKeyboardMarkup(rows)


def button_data(turn: int, choice_id: str) -> str:
    """A button's callback data: `TURN:CHOICE_ID`, the turn of the message that showed it
    (a press on an older message is stale) and the id of the option it chooses; a staff
    button's is its id as it is (`staff:…`, never a participant's: theirs start with digits)."""
    if str(choice_id).startswith(STAFF_PREFIX):
        return str(choice_id)[:64]
    return f"{turn}:{choice_id}"[:64]


def read_button_data(data: str) -> tuple[int, str | None]:
    """(turn, choice id) from callback data; turn -1 when it is not Votz's."""
    turn_text, _, choice = data.partition(":")
    return (int(turn_text) if turn_text.isdigit() else -1), (choice or None)


def to_inbound(update: Update, *, received_at: datetime) -> Inbound | None:
    """The conversation's view of an update (None for updates it does not read)."""
    if update.my_chat_member is not None:
        chat = update.my_chat_member.chat
        status = update.my_chat_member.new_chat_member.status
        if status == "kicked":  # the person blocked the bot: stop, quietly
            return Inbound(CHANNEL, str(chat.id), "", opt_out="STOP",
                           provider_id=str(update.update_id), received_at=received_at)
        return None
    hint = None
    user = update.effective_user
    if user is not None and user.language_code:
        code = user.language_code.split("-")[0].lower()
        hint = code if code in LOCALES else "fr"
    if update.callback_query is not None:
        query = update.callback_query
        chat_id = query.message.chat.id if query.message else query.from_user.id
        turn, choice = read_button_data(query.data or "")
        pressed = str(query.message.message_id) if query.message else None
        return Inbound(CHANNEL, str(chat_id), "", choice=choice, turn=turn,
                       provider_id=str(update.update_id), locale_hint=hint,
                       message_id=pressed, received_at=received_at)
    message = update.message
    if message is not None and message.contact is not None:
        # Telegram verifies a number only when people share their own contact.
        own = user is not None and message.contact.user_id == user.id
        raw = message.contact.phone_number
        phone = normalise_number(raw if raw.startswith("+") else f"+{raw}") if own else None
        return Inbound(CHANNEL, str(message.chat.id), "", contact=phone,
                       provider_id=str(update.update_id), locale_hint=hint,
                       received_at=received_at)
    if message is None or message.text is None:
        if message is not None:  # a sticker, a photo...: not understood, asked again
            return Inbound(CHANNEL, str(message.chat.id), "…", locale_hint=hint,
                           provider_id=str(update.update_id), received_at=received_at)
        return None
    text = message.text
    payload = None
    if text.startswith("/"):
        command, _, argument = text[1:].partition(" ")
        command = command.split("@")[0].lower()
        if command in COMMANDS:
            text = COMMANDS[command]
            if command == "start" and argument.strip():
                payload = argument.strip()
    return Inbound(CHANNEL, str(message.chat.id), text, provider_id=str(update.update_id),
                   locale_hint=hint, start_payload=payload, received_at=received_at)


class TelegramSender:
    """Sends replies as messages with inline keyboards; Bot API errors become send errors."""

    channel = CHANNEL
    rate = 30.0  # messages per second overall, Telegram's broadcast limit
    per_chat_interval = 1.0  # seconds between two messages to one chat

    def __init__(self, bot: Bot, *, rate: float = 30.0, per_chat_interval: float = 1.0,
                 paid_broadcast: bool = False) -> None:
        self.bot = bot
        self.rate = rate
        self.per_chat_interval = per_chat_interval
        # Bulk messages as paid broadcasts (up to 1,000 a second, billed in Stars); replies
        # are never paid for.
        self.paid_broadcast = paid_broadcast
        self.concurrency = sends_at_once(rate, paid_broadcast=paid_broadcast)
        # Messages sent without allow_paid_broadcast (replies) keep Telegram's free limit.
        self.reply_rate = min(rate, FREE_PER_SECOND) if paid_broadcast else 0.0
        # When each chat last got a message, oldest first: only the last interval's matter.
        self._last: OrderedDict[str, float] = OrderedDict()

    async def _pace(self, address: str) -> None:
        """About one message per second per chat, as Telegram asks."""
        now = time.monotonic()
        wait = self._last.get(address, 0.0) + self.per_chat_interval - now
        if wait > 0:
            await asyncio.sleep(wait)
        self._last[address] = now = time.monotonic()
        self._last.move_to_end(address)
        # Chats quiet for longer than the interval are forgotten from the front, a few at a
        # time (rebuilding the whole map past 10,000 chats, as a broadcast reaches 1,000 new
        # chats a second, took a quarter of the sending process's time).
        while self._last:
            oldest, at = next(iter(self._last.items()))
            if at > now - self.per_chat_interval:
                break
            del self._last[oldest]

    async def send(self, address: str, reply: Reply) -> SendResult:
        parts = split_text(reply.text + (f"\n{reply.footer}" if reply.footer else ""))
        markup = keyboard(reply)
        paid = True if self.paid_broadcast and reply.bulk else None  # None: not sent
        try:
            if reply.clears:
                await self._clear(address, reply.clears)
            if reply.edit and len(parts) == 1 and await self._edit(address, reply, parts[0]):
                return SendResult(provider_id=reply.edit)
            last = None
            for n, part in enumerate(parts):
                await self._pace(address)
                # Plain text (no parse_mode): what people wrote cannot break any formatting.
                # The Bot API's answer as it came, only its message_id read: building PTB's
                # `Message` from it was a fifth of a paid broadcast's CPU (bench/broadcast.py).
                last = await self.bot.do_api_request("send_message", api_kwargs={
                    "chat_id": int(address), "text": part,
                    "reply_markup": markup if n == len(parts) - 1 else None,
                    "allow_paid_broadcast": paid})
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            raise TransientSendError(f"telegram 429 retry after {seconds:g}s",
                                     retry_after=seconds) from None
        except Forbidden as exc:
            raise PermanentSendError(f"telegram 403 {exc.message}"[:250],
                                     participant_status=Status.STOPPED) from None
        except (TimedOut, NetworkError) as exc:
            if isinstance(exc, BadRequest):
                raise PermanentSendError(f"telegram 400 {exc.message}"[:250]) from None
            raise TransientSendError(f"telegram network {exc.message}"[:250]) from None
        except TelegramError as exc:
            raise PermanentSendError(f"telegram {exc.message}"[:250]) from None
        return SendResult(provider_id=str(last["message_id"]) if last else None)

    async def _edit(self, address: str, reply: Reply, text: str) -> bool:
        """Replace the message `reply.edit` in place (a selection's buttons); False when
        Telegram cannot (the message is gone or too old): it is then sent anew."""
        markup = keyboard(reply)
        await self._pace(address)
        try:
            await self.bot.edit_message_text(
                chat_id=int(address), message_id=int(reply.edit), text=text,
                reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None)
        except BadRequest as exc:
            # The same text and buttons (a press repeated): it already reads as it should.
            return "not modified" in exc.message.lower()
        return True

    async def _clear(self, address: str, message_id: str) -> None:
        """Remove the buttons of a question this reply answers. Here, not when the press is
        acknowledged: an edit of that message still queued (a selection's ticks) would bring
        them back after. Done again if the reply is retried; a message already without
        buttons, or gone, is left as it is."""
        with contextlib.suppress(BadRequest):
            await self.bot.edit_message_reply_markup(
                chat_id=int(address), message_id=int(message_id), reply_markup=None)

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bot.shutdown()


Handler = Callable[[Inbound], Awaitable[Accepted]]
STAFF_PREFIX = "staff:"  # the callback data of the staff chat's buttons
POINTER_EVERY = timedelta(hours=1)  # a group is pointed to a private chat at most this often
_LONG_AGO = datetime.min.replace(tzinfo=UTC)


class StaffDesk(Protocol):
    """The staff chat (`bot.staff.chat`), asked first about every update."""

    async def take(self, update: Update) -> bool:
        """True when the update was the desk's: from a staff chat, or a staff command or
        button from anyone else (refused). False: it goes to the participant flows."""
        ...


class TelegramReceiver:
    """Gets updates (polling or webhook), acknowledges buttons, hands messages on."""

    def __init__(self, bot: Bot, settings: Settings, handle: Handler, i18n: I18n,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.bot = bot
        self.settings = settings
        self.handle = handle
        self.i18n = i18n
        self.clock = clock
        # The same secret in every process serving this bot (derived from its token).
        self.secret = hmac.new(settings.telegram_token.encode(), b"votz-telegram-webhook",
                               hashlib.sha256).hexdigest()[:48]
        self._tasks: set[asyncio.Task[bool]] = set()
        self._acks: set[asyncio.Task[None]] = set()
        self._offset = 0
        self._failures: dict[int, int] = {}  # update id → failed handlings
        self.staff: StaffDesk | None = None  # set by the server (bot.staff.chat.attach)
        # Group chat → when it was last pointed away, oldest first; only the last
        # POINTER_EVERY's are kept (pruned as new ones come).
        self._pointed: OrderedDict[int, datetime] = OrderedDict()

    async def start(self) -> None:
        """Publish the command menu; register the webhook, or remove it to poll."""
        await self.bot.initialize()
        for locale in LOCALES:
            t = self.i18n[locale]
            commands = [BotCommand(name, t(COMMAND_HELP[name])) for name in COMMANDS]
            await self.bot.set_my_commands(commands, language_code=locale)
        await self.bot.set_my_commands(
            [BotCommand(name, self.i18n["fr"](COMMAND_HELP[name])) for name in COMMANDS])
        if self.settings.telegram_mode == "webhook":
            url = self.settings.public_url.rstrip("/") + "/telegram/webhook"
            await self.bot.set_webhook(url, secret_token=self.secret,
                                       allowed_updates=ALLOWED_UPDATES)
        else:
            await self.bot.delete_webhook()

    async def stop(self) -> None:
        """Wait for the updates being handled (webhook mode hands them over one by one)."""
        await self.settle()

    async def settle(self) -> None:
        """Wait until every update handed over so far is handled and its button press
        answered (those answers go out in tasks of their own)."""
        while self._tasks or self._acks:
            await asyncio.gather(*self._tasks, *self._acks, return_exceptions=True)

    def secret_ok(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header, self.secret)

    async def poll_once(self, *, timeout: int = 0) -> int:
        """One getUpdates call; handle what came; return how many updates came.

        Telegram forgets the updates before `offset` at the next call, so the offset moves
        past an update only once it is stored: an update whose handling failed (the
        database is down) comes again with the next call, and so do those after it (their
        second handling is a no-op: each update is processed once, by its id). An update
        that keeps failing while others pass is given up after `MAX_UPDATE_ATTEMPTS`.
        """
        updates = await self.bot.get_updates(offset=self._offset, timeout=timeout,
                                             allowed_updates=ALLOWED_UPDATES)
        if not updates:
            return 0
        stored = await asyncio.gather(*(self.dispatch(update) for update in updates))
        offset = self._offset
        for update, ok in zip(updates, stored, strict=True):
            if not ok and self._give_up(update.update_id, others_ok=any(stored)):
                ok = True
            if not ok:
                break
            offset = update.update_id + 1
        self._offset = max(self._offset, offset)
        if not all(stored):
            raise UpdatesNotStored(f"{stored.count(False)} of {len(updates)} updates not "
                                   "stored; they will be fetched again")
        return len(updates)

    def _give_up(self, update_id: int, *, others_ok: bool) -> bool:
        if not others_ok:
            return False  # nothing passes (the database is down): keep them all
        self._failures[update_id] = self._failures.get(update_id, 0) + 1
        if self._failures[update_id] < MAX_UPDATE_ATTEMPTS:
            return False
        log.error("telegram.update.given_up update=%s attempts=%d", update_id,
                  self._failures.pop(update_id))
        return True

    async def poll_forever(self, stopping: asyncio.Event) -> None:
        """Long-poll until `stopping` is set (a fetch in progress is abandoned: nothing is
        confirmed by it; handling in progress is finished)."""
        backoff = 1.0
        while not stopping.is_set():
            fetch = asyncio.create_task(self.poll_once(timeout=10))
            stop = asyncio.create_task(stopping.wait())
            await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            # Stopping while still waiting for Telegram, or while handling (let it finish).
            if not fetch.done() and not await self._finish_handling(fetch):
                return
            try:
                fetch.result()
                backoff = 1.0
            except (TimedOut, NetworkError, UpdatesNotStored) as exc:
                log.warning("telegram.polling.error %s; again in %.0fs", exc, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 30)

    async def _finish_handling(self, fetch: asyncio.Task[int]) -> bool:
        """On stop: True when the call ended by itself, False when it was abandoned."""
        if self._tasks:  # updates are being handled: they finish and are confirmed next time
            await asyncio.wait({fetch})
            return True
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetch
        return False

    def dispatch(self, update: Update) -> asyncio.Task[bool]:
        """Handle one update in its own task: people are served concurrently; one person's
        messages keep their order through the pipeline's per-conversation lock."""
        task = asyncio.create_task(self.process(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def process(self, update: Update) -> bool:
        """Hand one update to the conversation; False when it could not be stored."""
        if self.staff is not None:
            # Staff chats never reach the participant flows, nor staff commands from others.
            try:
                if await self.staff.take(update):
                    return True
            except Exception as exc:
                log.error("telegram.staff_update.not_stored update=%s error=%s",
                          update.update_id, error_summary(exc))
                return False
        chat = update.effective_chat
        if chat is not None and chat.type != ChatType.PRIVATE:
            # Consent, age and votes are never asked in front of others: one short answer
            # pointing to a private chat, and nothing stored.
            await self._elsewhere(update, chat)
            return True
        inbound = to_inbound(update, received_at=self.clock())
        query = update.callback_query
        try:
            handled = await self.handle(inbound) if inbound is not None else None
        except Exception as exc:
            log.error("telegram.update.not_stored update=%s error=%s", update.update_id,
                      error_summary(exc))
            if query is not None:
                self._acknowledge(query, keep=True)
            return False
        if query is not None:
            # Acknowledged once handled (a refused press is answered by a short notice),
            # in a task: neither the reply nor the next getUpdates waits for Telegram.
            reply = handled.reply if handled is not None else None
            pressed = str(query.message.message_id) if query.message else None
            # The pressed message keeps its buttons when the answer edits it (a selection
            # under way), refuses the press, or was given before (a repeated update); an
            # answer sent as a new message removes them itself, through the outbox, after
            # any edit of that message still queued (Reply.clears).
            keep = handled is None or handled.duplicate or bool(handled.notice) or (
                reply is not None and pressed in (reply.edit, reply.clears))
            self._acknowledge(query, notice=handled.notice if handled else "", keep=keep)
        return True

    def _acknowledge(self, query: CallbackQuery, *, notice: str = "",
                     keep: bool = False) -> None:
        ack = asyncio.create_task(self._answer(query, notice=notice, keep=keep))
        self._acks.add(ack)
        ack.add_done_callback(self._acks.discard)

    async def _answer(self, query: CallbackQuery, *, notice: str, keep: bool) -> None:
        """Stop the button's spinner (with a short notice, if any) and remove the answered
        question's keyboard unless it is kept."""
        with contextlib.suppress(TelegramError):
            await query.answer(notice[:200] or None)
            if query.message is not None and not keep:
                await self.bot.edit_message_reply_markup(
                    chat_id=query.message.chat.id, message_id=query.message.message_id,
                    reply_markup=None)

    async def _elsewhere(self, update: Update, chat: Chat) -> None:
        """A group or a channel: a command there, or the bot added to it, gets one short
        answer pointing to a private chat (at most once an hour per chat); the rest, and
        every button, is ignored. Nothing reaches the pipeline: nothing is stored."""
        if update.callback_query is not None:
            with contextlib.suppress(TelegramError):
                await update.callback_query.answer()
            return
        member = update.my_chat_member
        added = member is not None and member.new_chat_member.status in (
            ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR)
        message = update.message
        asked = message is not None and self._addressed(message.text or "")
        now = self.clock()
        if not (added or asked) or now - self._pointed.get(chat.id, _LONG_AGO) < POINTER_EVERY:
            return
        self._pointed[chat.id] = now
        self._pointed.move_to_end(chat.id)
        while self._pointed:  # the ones pointed over an hour ago need no memory
            oldest, at = next(iter(self._pointed.items()))
            if now - at < POINTER_EVERY:
                break
            del self._pointed[oldest]
        user = update.effective_user
        code = (user.language_code or "").split("-")[0].lower() if user else ""
        t = self.i18n[code if code in LOCALES else "fr"]
        with contextlib.suppress(TelegramError):
            try:
                name: str | None = self.bot.username
            except RuntimeError:  # not initialized yet: ask who we are
                name = (await self.bot.get_me()).username
            link = f"https://t.me/{name}"
            await self.bot.send_message(chat_id=chat.id, text=t("telegram.private_only",
                                                                   link=link))
        log.info("telegram.group.pointed chat=%s", mask_address(str(chat.id)))

    def _addressed(self, text: str) -> bool:
        """A command, or a message naming the bot (@votz_bot): what a group says to it."""
        if text.startswith("/"):
            return True
        try:
            name = self.bot.username
        except RuntimeError:  # not initialized: only commands are known to be for us
            return False
        return f"@{name}".casefold() in text.casefold()

    async def webhook_update(self, data: dict[str, Any]) -> bool:
        """One update Telegram posted; False when it could not be stored (Telegram will
        post it again when we answer with an error)."""
        update = Update.de_json(data, self.bot)
        task = self.dispatch(update)
        return await task


class UpdatesNotStored(Exception):
    """Some updates of a getUpdates batch were not stored; they will come again."""


class TelegramWebhook:
    """`POST /telegram/webhook`: updates Telegram posts, checked by their secret token."""

    def __init__(self, receiver: TelegramReceiver, host: Host) -> None:
        self.receiver = receiver
        self.metrics = host.metrics

    def routes(self) -> list[Route]:
        return [Route("/telegram/webhook", self.update, methods=["POST"])]

    async def update(self, request: Request) -> Response:
        if not self.receiver.secret_ok(request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
            self.metrics["telegram_secret_invalid_total"] += 1
            log.warning("telegram.webhook.secret_invalid from=%s",
                        request.client.host if request.client else "?")
            return PlainTextResponse("forbidden", status_code=403)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                return PlainTextResponse("too large", status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
            stored = await self.receiver.webhook_update(data)
        except (ValueError, TypeError, KeyError, TelegramError) as exc:
            self.metrics["telegram_malformed_total"] += 1
            log.warning("telegram.webhook.malformed error=%s", type(exc).__name__)
            return PlainTextResponse("bad request", status_code=400)
        if not stored:
            # Telegram posts the update again later; it is processed once, by its id.
            return PlainTextResponse("not stored, try again", status_code=503)
        self.metrics["telegram_updates_total"] += 1
        return Response(status_code=200)


@dataclass
class TelegramRunning(Running):
    """The running channel, with its receiver (tests poll through it)."""

    receiver: TelegramReceiver = field(kw_only=True)


def _configured(settings: Settings) -> bool:
    if not settings.telegram_token:
        return False
    if settings.telegram_mode == "webhook" and not settings.public_url:
        raise ConfigError("VOTZ_TELEGRAM_MODE=webhook needs VOTZ_PUBLIC_URL")
    return True


def _open(settings: Settings, host: Host) -> Running:
    bot = make_bot(settings)
    sender = TelegramSender(bot, rate=settings.telegram_messages_per_second,
                            per_chat_interval=settings.telegram_chat_interval,
                            paid_broadcast=settings.telegram_paid_broadcast)
    receiver = TelegramReceiver(bot, settings, host.handle, host.i18n, host.clock)
    # Served in both modes: in polling mode nobody has the secret, so every call gets 403.
    routes = TelegramWebhook(receiver, host).routes()

    async def started() -> str:
        try:
            await receiver.start()
        except InvalidToken:
            raise ConfigError("Telegram refuses VOTZ_TELEGRAM_TOKEN: ask @BotFather for the "
                              "bot's token (/mybots → API Token)") from None
        except NetworkError as exc:
            where = settings.telegram_api_url or "https://api.telegram.org"
            raise ConfigError(f"cannot reach the Telegram Bot API at {where} ({exc.message}): "
                              "check the network, HTTPS_PROXY or VOTZ_TELEGRAM_API_URL"
                              ) from None
        me = await bot.get_me()
        return f"channel.telegram.started bot=@{me.username} mode={settings.telegram_mode}"

    loops = ({"telegram.polling": receiver.poll_forever}
             if settings.telegram_mode == "polling" else {})
    return TelegramRunning(sender, routes, start=started, stop=receiver.stop, loops=loops,
                           receiver=receiver)


def _chat_id(raw: str) -> str | None:
    text = raw.strip()
    return text if text.lstrip("-").isdigit() else None


CHANNEL_SPEC = Channel(
    CHANNEL,
    # Options are buttons, all shown at once; people can share their verified number.
    Capabilities(buttons=True, asks_contact=True),
    normalise_address=_chat_id,
    configured=_configured,
    open=_open,
)
