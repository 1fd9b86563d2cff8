"""Telegram specifics: groups and channels are pointed to a private chat and nothing about
them is stored; no "numéro" for a chat id; both forms of `VOTZ_TELEGRAM_API_URL`."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlalchemy.sql.schema import Table

from bot.channels.telegram import api_root, make_bot
from bot.config import Settings
from bot.store.tables import conversations, inbound_seen, outbox, participants
from bot.testing.fake_telegram import TOKEN, FakeTelegram
from tests.integration import test_telegram
from tests.integration.test_telegram import ANNE, Telegram

GROUP = -100123

tg = test_telegram.tg  # the fixture: Votz on the fake Bot API, polling and webhook


async def count(tg: Telegram, table: Table) -> int:
    return int(await tg.app.db.run(lambda c: c.execute(
        select(func.count()).select_from(table)).scalar_one()))


async def stored(tg: Telegram) -> dict[str, int]:
    return {t.name: await count(tg, t)
            for t in (participants, conversations, outbox, inbound_seen)}


async def test_a_group_start_gets_one_pointer_and_nothing_is_stored(tg: Telegram) -> None:
    tg.fake.says_in_group(GROUP, ANNE, "/start")
    await tg.deliver()
    said = tg.fake.sent(GROUP)
    assert [c.text for c in said] == [
        "Je réponds seulement en message privé, pour que vos réponses restent entre nous : "
        "écrivez-moi sur https://t.me/votz_region_bot"]
    assert said[0].buttons == []
    assert await stored(tg) == {"participants": 0, "conversations": 0, "outbox": 0,
                                "inbound_seen": 0}
    # Again within the hour, a plain message, someone else's command: no second answer.
    tg.fake.says_in_group(GROUP, ANNE, "/start")
    tg.fake.says_in_group(GROUP, 2002, "bonjour à tous", language="en")
    tg.fake.says_in_group(GROUP, 2002, "/voter@votz_region_bot", language="en")
    await tg.deliver()
    assert len(tg.fake.sent(GROUP)) == 1
    assert tg.fake.sent(ANNE) == [] and tg.fake.sent(2002) == []
    assert await stored(tg) == {"participants": 0, "conversations": 0, "outbox": 0,
                                "inbound_seen": 0}


async def test_added_to_a_group_or_removed_stores_nothing(tg: Telegram) -> None:
    tg.fake.adds_bot(-100777, 2002, chat_type="supergroup")
    await tg.deliver()
    assert [c.text[:30] for c in tg.fake.sent(-100777)] == ["Je réponds seulement en messag"]
    tg.fake.adds_bot(-100777, 2002, chat_type="supergroup", status="kicked")
    await tg.deliver()
    assert len(tg.fake.sent(-100777)) == 1
    assert await stored(tg) == {"participants": 0, "conversations": 0, "outbox": 0,
                                "inbound_seen": 0}


async def test_the_pointer_speaks_the_writers_language(tg: Telegram) -> None:
    tg.fake.says_in_group(GROUP, 2002, "/start", language="en")
    await tg.deliver()
    assert tg.fake.sent(GROUP)[0].text.startswith("I only answer in private messages")


async def test_a_message_naming_the_bot_in_a_group_is_pointed_away(tg: Telegram) -> None:
    tg.fake.says_in_group(GROUP, 2002, "on vote ici ?")  # not for the bot: ignored
    await tg.deliver()
    assert tg.fake.sent(GROUP) == []
    tg.fake.says_in_group(GROUP, 2002, "@Votz_Region_Bot on vote ici ?")
    await tg.deliver()
    assert [c.text[:20] for c in tg.fake.sent(GROUP)] == ["Je réponds seulement"]
    assert await count(tg, participants) == 0


async def test_private_chats_still_start_onboarding(tg: Telegram) -> None:
    tg.fake.says_in_group(GROUP, ANNE, "/start")
    await tg.deliver()
    welcome = await tg.says("/start")
    assert welcome.text.startswith("Bonjour ! Avec Votz")
    assert await count(tg, participants) == 1


async def test_no_numero_for_a_chat_id_and_no_sms_on_telegram(tg: Telegram) -> None:
    welcome = await tg.says("/start")
    consent = await tg.presses(welcome, "Français")
    assert consent is not None
    assert "nous gardons l'identifiant de votre compte, votre langue" in consent.text
    assert "numéro" not in consent.text
    age = await tg.presses(consent, "J'accepte")
    assert age is not None
    postcode = await tg.presses(age, "18-25 ans")
    assert postcode is not None
    await tg.says("31000")
    mine = await tg.says("/mesdonnees")
    assert mine.text.startswith(f"Vos données :\nIdentifiant : {ANNE}\n")
    assert "numéro" not in mine.text.lower()
    helped = await tg.says("/aide")
    assert helped.text.startswith("Votz, la Région dans votre messagerie. Touchez les boutons")
    assert "SMS" not in helped.text


async def test_sms_copy_still_names_the_number(tg: Telegram) -> None:
    """The copy follows the channel's capability (a verified address), not its name."""
    from bot.channels.base import Inbound

    app = tg.app
    handled = await app.handle(Inbound("sms", "+33611111111", "bonjour"))
    handled = await app.handle(Inbound("sms", "+33611111111", "1"))
    assert handled.reply is not None
    assert "nous gardons votre numéro, votre langue" in handled.reply.text
    await app.handle(Inbound("sms", "+33611111111", "1"))
    await app.handle(Inbound("sms", "+33611111111", "3"))
    await app.handle(Inbound("sms", "+33611111111", "31000"))
    handled = await app.handle(Inbound("sms", "+33611111111", "AIDE"))
    assert handled.reply is not None and handled.reply.text.startswith("Votz, la Région par SMS")


@pytest.mark.parametrize("suffix", ["", "/", "/bot", "/bot/"])
async def test_both_api_url_forms_reach_the_server(fake_telegram: tuple[FakeTelegram, str],
                                                   suffix: str) -> None:
    _, url = fake_telegram
    settings = replace(Settings.from_env({}, dotenv=None), telegram_token=TOKEN,
                       telegram_api_url=url + suffix)
    bot = make_bot(settings)
    await bot.initialize()
    try:
        assert (await bot.get_me()).username == "votz_region_bot"
    finally:
        await bot.shutdown()
    assert bot.base_url == f"{url}/bot{TOKEN}"
    assert bot.base_file_url == f"{url}/file/bot{TOKEN}"


def test_api_root() -> None:
    assert api_root("http://host:8081") == "http://host:8081"
    assert api_root("http://host:8081/bot") == "http://host:8081"
    assert api_root(" http://host:8081/bot/ ") == "http://host:8081"
    assert api_root("https://proxy.example/telegram") == "https://proxy.example/telegram"
    assert api_root("https://proxy.example/robot") == "https://proxy.example/robot"
