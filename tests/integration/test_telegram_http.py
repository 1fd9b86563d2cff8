"""PTB's calls over Votz's aiohttp transport: JSON, uploads, timeouts and refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import NetworkError, TimedOut

from bot.channels.aiohttp_request import AiohttpRequest
from bot.channels.base import Reply, ReplyChoice, TransientSendError
from bot.channels.telegram import TelegramSender
from bot.testing.fake_telegram import BOT, TOKEN, FakeTelegram
from bot.testing.server import free_port
from tests.conftest import Proxy


async def bot_at(url: str, *, read_timeout: float = 5.0) -> Bot:
    request = AiohttpRequest(read_timeout=read_timeout, connect_timeout=1.0)
    bot = Bot(TOKEN, base_url=f"{url}/bot", request=request,
              get_updates_request=AiohttpRequest())
    await request.initialize()
    return bot


@pytest.fixture
async def hanging() -> AsyncIterator[str]:
    """A server that accepts connections and never answers."""
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def test_calls_go_as_json_and_answers_come_back(fake_telegram: tuple[FakeTelegram, str]) -> None:
    telegram, url = fake_telegram
    bot = await bot_at(url)
    try:
        me = await bot.get_me()
        assert me.username == "votz_region_bot"
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Oui ✅", callback_data="3:yes")]])
        answer = await bot.send_message(1001, "Déjà voté ? 🗳️", reply_markup=markup)
        assert answer.message_id > 0 and answer.text == "Déjà voté ? 🗳️"
        call = telegram.sent(1001)[-1]
        assert call.text == "Déjà voté ? 🗳️"
        assert call.buttons == [("Oui ✅", "3:yes")]
    finally:
        await bot.request.shutdown()


async def test_files_go_as_multipart(fake_telegram: tuple[FakeTelegram, str]) -> None:
    telegram, url = fake_telegram
    bot = await bot_at(url)
    try:
        assert await bot.set_chat_photo(1001, photo=b"\x89PNG poster")
        call = telegram.calls[-1]
        assert call.method == "setChatPhoto"
        assert str(call.params["chat_id"]) == "1001"  # form fields are text
        assert call.params["photo"] == b"\x89PNG poster"
    finally:
        await bot.request.shutdown()


async def test_a_silent_server_times_out_and_the_message_is_retried(hanging: str) -> None:
    bot = await bot_at(hanging, read_timeout=0.2)
    sender = TelegramSender(bot, per_chat_interval=0)
    try:
        with pytest.raises(TimedOut):
            await bot.send_message(1001, "Bonjour")
        with pytest.raises(TransientSendError, match="network"):
            await sender.send("1001", Reply("Bonjour", (ReplyChoice(1, "1", "Oui"),)))
    finally:
        await bot.request.shutdown()


async def test_a_refused_connection_is_a_network_error_and_retried() -> None:
    bot = await bot_at(f"http://127.0.0.1:{free_port()}")
    sender = TelegramSender(bot, per_chat_interval=0)
    try:
        with pytest.raises(NetworkError, match="aiohttp"):
            await bot.send_message(1001, "Bonjour")
        with pytest.raises(TransientSendError):
            await sender.send("1001", Reply("Bonjour"))
    finally:
        await bot.request.shutdown()


async def test_calls_before_initialize_are_refused() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/botX/getMe", "POST")


async def test_the_proxy_from_the_environment_is_used(http_proxy: Proxy,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment behind an outbound proxy (HTTP_PROXY) reaches Telegram through it."""
    http_proxy.body = {"ok": True, "result": BOT}
    # A reserved name that is never resolved here: only the proxy can answer.
    bot = await bot_at("http://api.telegram.invalid")
    try:
        me = await bot.get_me()
    finally:
        await bot.request.shutdown()
    assert me.username == "votz_region_bot"
    assert http_proxy.seen == [f"POST http://api.telegram.invalid/bot{TOKEN}/getMe HTTP/1.1"]
    # NO_PROXY names the host: the proxy is bypassed (and nobody listens there).
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = await bot_at(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(NetworkError):
            await direct.get_me()
    finally:
        await direct.request.shutdown()
    assert len(http_proxy.seen) == 1
