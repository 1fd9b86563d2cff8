"""The receiver remembers a group it pointed to a private chat for an hour only: its memory
does not grow with every group the bot ever met."""

from __future__ import annotations

from tests.conftest import FixedClock
from tests.integration import test_telegram
from tests.integration.test_telegram import Telegram

tg = test_telegram.tg  # the fixture: Votz on the fake Bot API, polling and webhook


async def test_groups_pointed_over_an_hour_ago_are_forgotten(
        tg: Telegram, clock: FixedClock) -> None:
    for group in (-1001, -1002, -1003):
        tg.fake.says_in_group(group, 2002, "/start")
    await tg.deliver()
    assert set(tg.receiver._pointed) == {-1001, -1002, -1003}
    clock.advance(minutes=30)
    tg.fake.says_in_group(-1004, 2002, "/start")
    tg.fake.says_in_group(-1001, 2002, "/start")  # within the hour: no second pointer
    await tg.deliver()
    assert set(tg.receiver._pointed) == {-1001, -1002, -1003, -1004}
    assert len(tg.fake.sent(-1001)) == 1
    clock.advance(minutes=45)  # the first three were pointed 75 minutes ago
    tg.fake.says_in_group(-1005, 2002, "/start")
    await tg.deliver()
    assert list(tg.receiver._pointed) == [-1004, -1005]
    tg.fake.says_in_group(-1002, 2002, "/start")  # forgotten: pointed again, once
    await tg.deliver()
    assert len(tg.fake.sent(-1002)) == 2
    assert list(tg.receiver._pointed) == [-1004, -1005, -1002]
