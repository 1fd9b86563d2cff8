"""Send rates: every process on one database shares a channel's limit, a 429 pauses the
channel everywhere, replies go ahead of a bulk backlog, paid broadcasts are paid for bulk
messages only.

The fake Bot API and the fake Twilio count arrivals on a sliding one-second window and answer
429 beyond their limit, as the providers do; the tests count messages in windows (arrivals,
or departures where the fake's own timing is too loose) and never assert a speed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from bot.app import App
from bot.channels.base import Reply, SendResult
from bot.channels.sms import TwilioSender
from bot.channels.telegram import CHANNEL_SPEC, TelegramSender
from bot.config import Settings
from bot.delivery.outbox import queue_values
from bot.delivery.ratelimit import (
    AHEAD,
    BURST,
    LATE,
    PACE,
    SHARED_LINGER,
    Budget,
    Level,
    LocalLevel,
    SharedLevel,
    grant,
    shared_cost,
)
from bot.store.tables import outbox
from bot.testing.fake_telegram import TOKEN, FakeTelegram
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer
from tests.conftest import FixedClock

FIRST_CHAT = 7_000_000


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 30) -> None:
    """Poll what other tasks are doing; bounded, never a blind sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def busiest_second(times: list[float]) -> int:
    """The most arrivals within any one second (the fake's sliding window)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class Counting:
    """A sender that counts what it sent, then hands it to the real one (which process
    sent how much)."""

    def __init__(self, inner: TelegramSender) -> None:
        self.inner = inner
        self.channel = inner.channel
        self.rate = inner.rate
        self.reply_rate = inner.reply_rate  # what the dispatcher asks the sender
        self.concurrency = inner.concurrency
        self.sent = 0
        self.replies: list[float] = []  # time.monotonic() of each reply as it left

    def cost(self, reply: Reply) -> int:
        return self.inner.cost(reply)

    async def send(self, address: str, reply: Reply) -> SendResult:
        if not reply.bulk:
            self.replies.append(time.monotonic())
        result = await self.inner.send(address, reply)
        self.sent += 1
        return result

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def fake() -> Iterator[tuple[FakeTelegram, str]]:
    bot_api = FakeTelegram()
    with LocalServer(bot_api.asgi()) as server:
        yield bot_api, server.url


def telegram_settings(database: tuple[str, str | None], url: str, **extra: Any) -> Settings:
    return replace(Settings.from_env({}, dotenv=None), database_url=database[0],
                   telegram_token=TOKEN, telegram_api_url=url, **extra)


async def open_sender(app: App, settings: Settings) -> TelegramSender:
    """The Telegram sender `votz run` would open with these settings, ready to send."""
    assert CHANNEL_SPEC.open is not None
    sender = CHANNEL_SPEC.open(settings, app).sender
    assert isinstance(sender, TelegramSender)
    await sender.bot.initialize()
    return sender


async def processes(stack: AsyncExitStack, database: tuple[str, str | None], url: str,
                    clock: FixedClock, count: int, **extra: Any) -> list[tuple[App, Counting]]:
    """`count` Votz instances on one database, each with its own Telegram sender."""
    found = []
    for n in range(count):
        settings = telegram_settings(database, url, instance=f"p{n}", **extra)
        app = await stack.enter_async_context(App.open(settings, clock=clock,
                                                       schema=database[1]))
        sender = Counting(await open_sender(app, settings))
        stack.push_async_callback(sender.close)
        app.dispatcher.add_sender("telegram", sender)
        found.append((app, sender))
    return found


async def queue(app: App, clock: FixedClock, texts: list[tuple[int, str, bool]]) -> None:
    """(chat, text, bulk) rows in the outbox, in this order."""
    def insert(conn: Any) -> None:
        conn.execute(outbox.insert(), [queue_values(
            participant_id=None, channel="telegram", address=str(chat), reply=Reply(text),
            now=clock(), bulk=bulk) for chat, text, bulk in texts])

    await app.db.run(insert)


@asynccontextmanager
async def draining(apps: list[App]) -> AsyncIterator[None]:
    """Every instance's Telegram dispatcher runs until the block ends."""
    stopping = asyncio.Event()
    loops = [asyncio.create_task(app.dispatcher.channels["telegram"].run(stopping))
             for app in apps]
    try:
        yield
    finally:
        stopping.set()
        await asyncio.gather(*loops)


# --- the bucket itself: slots never bunch up, whoever asks ------------------------------------


@pytest.mark.parametrize("costs", [(1.0,), (1.0, 1.02, 1.05)])
def test_slots_from_any_number_of_reservers_are_spaced_by_the_rate(
        costs: tuple[float, ...]) -> None:
    """Three processes reserving at random instants for random amounts get slots that are
    all 1/rate apart: no window of T seconds holds more than BURST + rate·T of them. When a
    slot costs more than one unit (several processes, see shared_cost), whatever the cost
    of each reservation, the next slot is at least that slot's cost/rate after it."""
    rate, level, now = 30.0, Level(BURST, 0.0), 0.0
    shuffle = random.Random(12)
    slots: list[tuple[float, float]] = []  # (instant, cost)
    held = {name: 0.0 for name in "abc"}  # each reserver's last slot
    while now < 20.0:
        name = shuffle.choice("abc")
        if held[name] - now > AHEAD / 2:  # as Budget: reserve when the slots run low
            now += shuffle.uniform(0, 0.05)
            continue
        cost = shuffle.choice(costs)
        level, got = grant(level, want=shuffle.randint(1, 12), now=now, rate=rate, cost=cost)
        slots += [(now + delay, cost) for delay in got]
        held[name] = now + got[-1]
        # Nobody reserves far ahead of the others (each may get one slot past the horizon).
        assert got[-1] <= AHEAD + 3 * max(costs) / rate
        now += shuffle.uniform(0, 0.05)
    slots.sort()
    for (a, cost), (b, _) in itertools.pairwise(slots):
        assert b - a >= cost / rate - 1e-9  # so any second holds `rate` slots at most
    assert len(slots) >= rate / max(costs) * 19  # and the budget was used, not wasted


async def test_a_reply_takes_the_next_slot_before_bulk_messages_waiting() -> None:
    """Four bulk messages wait for their slots; a reply coming after them goes next."""
    budget = Budget(LocalLevel(5.0), 5.0)  # slots 0.2 s apart
    order: list[str] = []

    async def take(name: str, *, urgent: bool) -> None:
        await budget.take(1, urgent=urgent)
        order.append(name)

    bulk = [asyncio.create_task(take(f"bulk {n}", urgent=False)) for n in range(4)]
    await eventually(lambda: order, "the first slot (an idle bucket's one unit)")
    await take("reply", urgent=True)
    await asyncio.gather(*bulk)
    assert order == ["bulk 0", "reply", "bulk 1", "bulk 2", "bulk 3"]


# --- several processes, one limit -------------------------------------------------------------


async def test_while_several_processes_reserve_their_slots_leave_room_for_their_jitter(
        app: App) -> None:
    """One process alone gets slots 1/rate apart (its own window rule guards its jitter).
    Once another reserves too, slots are spaced so that `limit` + 1 of them span 1 s plus
    LATE plus the largest guard either reported, from the first slot after the other came
    (a gap before it: the slots before were spaced for one); when the other stops, the pace
    comes back SHARED_LINGER later. On the real `send_budgets` row, SQLite and
    PostgreSQL."""
    limit = 100
    rate = limit * PACE
    now = [1_800_000_000.0]  # the wall clock, moved by hand

    def level(guard: float) -> tuple[SharedLevel, float]:
        return SharedLevel(app.db, "telegram", rate, clock=lambda: now[0]), guard

    a, b = level(0.006), level(0.02)
    slots: list[tuple[float, str]] = []  # (instant, phase)

    async def reserve(who: tuple[SharedLevel, float], phase: str) -> None:
        store, guard = who
        at, delays = await store.reserve(25, spread=guard)
        slots.extend((at + delay, phase) for delay in delays)
        now[0] += 0.1

    for _ in range(20):  # alone: 2 s
        await reserve(a, "alone")
    for n in range(30):  # together: 3 s, from b's first reservation on
        await reserve(a if n % 2 else b, "together")
    for _ in range(10):  # b stopped: 1 s, within SHARED_LINGER
        await reserve(a, "lingering")
    now[0] += SHARED_LINGER
    for _ in range(20):
        await reserve(a, "alone again")

    def gaps(phase: str) -> list[float]:
        instants = [at for at, p in slots if p == phase]
        return [y - x for x, y in itertools.pairwise(instants)]

    larger = 0.02  # b's guard: a reads it from the row
    wide = shared_cost(PACE, larger) / rate
    assert shared_cost(PACE, 0.02) > 1.019
    for phase in ("alone", "alone again"):
        assert gaps(phase) and all(abs(g - 1 / rate) < 1e-5 for g in gaps(phase)), phase
    together = gaps("together")
    assert together and all(g >= wide - 1e-5 for g in together), (min(together), wide)
    lingering = gaps("lingering")  # the larger guard still holds
    assert lingering and all(g >= wide - 1e-5 for g in lingering)
    # So any limit + 1 consecutive slots with one given to b span 1 s + LATE + the larger
    # guard, those given before b came (spaced for a alone) included.
    ordered = [at for at, p in slots if p != "alone again"]
    first_shared = next(n for n, (_, p) in enumerate(slots) if p == "together")
    spans = [ordered[n + limit] - ordered[n]
             for n in range(max(0, first_shared - limit), len(ordered) - limit)]
    assert spans and min(spans) >= 1 + LATE + larger - 1e-6



LIMIT = 10  # messages a second: low, so that a stalled test machine cannot fake a burst


async def test_two_processes_on_one_database_stay_under_the_limit_together(
        database: tuple[str, str | None], clock: FixedClock,
        fake: tuple[FakeTelegram, str]) -> None:
    """Two instances drain one backlog into a Bot API that refuses more than the limit:
    no 429, nobody gets a message twice, both did part of the work.

    Tolerance: the fake allows LIMIT + 1 in a second. While both reserve, slots leave room
    for a handout up to LATE after its slot and for the jitter of either process's sends
    as they measured it (`shared_cost`, tested exactly above), so the limit holds while the
    jitter stays within what they saw; here both instances and the fake share one
    interpreter, and a first spike of a loaded machine (10 sends a second measure little)
    can add one, once in a few dozen runs. Without a shared budget the two send twice the
    limit.
    """
    bot_api, url = fake
    bot_api.limit = LIMIT + 1
    people = 40
    async with AsyncExitStack() as stack:
        both = await processes(stack, database, url, clock, 2,
                               telegram_messages_per_second=float(LIMIT))
        await queue(both[0][0], clock, [(FIRST_CHAT + n, f"annonce {n}", True)
                                        for n in range(people)])
        async with draining([app for app, _ in both]):
            await eventually(lambda: len(bot_api.arrivals) >= people or bot_api.flooded,
                             "every message, or a 429")
    assert bot_api.flooded == 0
    times = [at for at, _ in bot_api.arrivals]
    assert busiest_second(times) <= LIMIT + 1
    chats = Counter(c.params["chat_id"] for c in bot_api.sent())
    assert sorted(chats) == [FIRST_CHAT + n for n in range(people)]
    assert set(chats.values()) == {1}  # nothing sent twice
    assert all(sender.sent > 0 for _, sender in both)  # the work was shared
    assert sum(sender.sent for _, sender in both) == people


async def test_a_429_pauses_the_channel_in_every_process(
        database: tuple[str, str | None], clock: FixedClock,
        fake: tuple[FakeTelegram, str]) -> None:
    """Telegram's retry_after applies to the bot: after a 429 no process sends for that
    long, not only the message that got it.

    Each process here sends one message at a time, so it holds one slot at most when the
    pause comes: the other process may still use that one, never more.
    """
    bot_api, url = fake
    retry_after = 2
    bot_api.fail_next("sendMessage", 429, f"Too Many Requests: retry after {retry_after}",
                      {"retry_after": retry_after})
    async with AsyncExitStack() as stack:
        both = await processes(stack, database, url, clock, 2,
                               telegram_messages_per_second=2.0)
        for app, _ in both:  # one row at a time: both have work when the 429 comes
            channel = app.dispatcher.channels["telegram"]
            channel.batch = channel.concurrency = 1
        await queue(both[0][0], clock, [(FIRST_CHAT + n, f"annonce {n}", True)
                                        for n in range(8)])

        def refused() -> list[float]:
            return [c.at for c in bot_api.calls if c.method == "sendMessage!failed"]

        async with draining([app for app, _ in both]):
            await eventually(lambda: len(bot_api.arrivals) >= 7, "the other messages")
            clock.advance(seconds=2 * retry_after)  # the refused one is due again
            await eventually(lambda: len(bot_api.arrivals) >= 8, "the refused message")
    [refused_at] = refused()
    during = [at for at, _ in bot_api.arrivals if refused_at < at < refused_at + retry_after]
    assert len(during) <= 1  # the slot the other process held already
    assert bot_api.flooded == 0
    assert len({c.params["chat_id"] for c in bot_api.sent()}) == 8  # the refused one too
    assert all(sender.sent > 0 for _, sender in both)


# --- replies first ------------------------------------------------------------------------


async def test_a_reply_goes_ahead_of_a_bulk_backlog(
        database: tuple[str, str | None], clock: FixedClock,
        fake: tuple[FakeTelegram, str]) -> None:
    """A reply queued while 40 announcements drain at 10/s is claimed at once and takes the
    next slot: it does not wait behind the announcements claimed before it (a batch is 20
    rows), nor behind those waiting for a slot."""
    bot_api, url = fake
    async with AsyncExitStack() as stack:
        [(app, _)] = await processes(stack, database, url, clock, 1,
                                     telegram_messages_per_second=float(LIMIT))
        await queue(app, clock, [(FIRST_CHAT + n, f"annonce {n}", True) for n in range(40)])
        async with draining([app]):
            await eventually(lambda: len(bot_api.arrivals) >= 3, "the drain to start")
            await queue(app, clock, [(FIRST_CHAT + 999, "votre réponse", False)])
            before = len(bot_api.sent())
            app.dispatcher.wake()
            await eventually(lambda: any(c.text == "votre réponse" for c in bot_api.sent()),
                             "the reply")
        texts = [c.text for c in bot_api.sent()]
    # Only the send already given its slot goes first (two if the next slot came while the
    # reply was being claimed), not the announcements waiting for theirs (four at a time)
    # nor those claimed before it.
    assert texts.index("votre réponse") <= before + 2


# --- paid broadcasts ------------------------------------------------------------------------


def test_paid_broadcasts_raise_telegrams_default_rate_only() -> None:
    paid = Settings.from_env({"VOTZ_TELEGRAM_PAID_BROADCAST": "1"}, dotenv=None)
    assert paid.telegram_paid_broadcast
    assert paid.telegram_messages_per_second == 1000
    chosen = Settings.from_env({"VOTZ_TELEGRAM_PAID_BROADCAST": "yes",
                                "VOTZ_TELEGRAM_MESSAGES_PER_SECOND": "500"}, dotenv=None)
    assert chosen.telegram_messages_per_second == 500
    free = Settings.from_env({}, dotenv=None)
    assert not free.telegram_paid_broadcast
    assert free.telegram_messages_per_second == 30


@pytest.mark.parametrize("paid", [True, False])
async def test_paid_broadcast_is_asked_for_bulk_messages_only(
        database: tuple[str, str | None], clock: FixedClock,
        fake: tuple[FakeTelegram, str], paid: bool) -> None:
    bot_api, url = fake
    bot_api.paid_limit = 1000  # paid broadcasts enabled on this bot
    async with AsyncExitStack() as stack:
        [(app, _)] = await processes(stack, database, url, clock, 1,
                                     telegram_paid_broadcast=paid,
                                     telegram_messages_per_second=1000.0)
        await queue(app, clock, [(FIRST_CHAT + 1, "annonce", True),
                                 (FIRST_CHAT + 2, "réponse", False),
                                 (FIRST_CHAT + 3, "rappel", True),
                                 (FIRST_CHAT + 1, "réponse aussi", False)])
        await app.dispatcher.drain()
    asked = {c.text: c.params.get("allow_paid_broadcast") for c in bot_api.sent()}
    if paid:
        assert asked == {"annonce": True, "rappel": True, "réponse": None,
                         "réponse aussi": None}
        assert sorted(p for _, p in bot_api.arrivals) == [False, False, True, True]
    else:
        assert set(asked.values()) == {None}
    assert bot_api.flooded == 0


async def test_with_paid_broadcasts_replies_keep_the_free_limit(
        database: tuple[str, str | None], clock: FixedClock,
        fake: tuple[FakeTelegram, str]) -> None:
    """Bulk messages go at the paid pace; replies, sent free, leave at most 30 a second
    even while a wave of them comes in (counted as they leave: the fake runs in this
    process, where its own timing is too loose to count 30 a second to the millisecond)."""
    bot_api, url = fake
    bot_api.paid_limit = 1000
    replies, bulk = 45, 100
    async with AsyncExitStack() as stack:
        [(app, sender)] = await processes(stack, database, url, clock, 1,
                                          telegram_paid_broadcast=True,
                                          telegram_messages_per_second=1000.0)
        await queue(app, clock, [(FIRST_CHAT + n, f"annonce {n}", True) for n in range(bulk)]
                    + [(FIRST_CHAT + bulk + n, f"réponse {n}", False)
                       for n in range(replies)])
        async with draining([app]):
            await eventually(lambda: len(bot_api.arrivals) >= replies + bulk, "every message")
    assert len(sender.replies) == replies
    assert busiest_second(sender.replies) <= 30
    assert sorted(paid for _, paid in bot_api.arrivals) == [False] * replies + [True] * bulk
    assert bot_api.flooded == 0


async def test_sms_leave_at_the_segment_rate(database: tuple[str, str | None],
                                             clock: FixedClock) -> None:
    """Twilio counts segments: one- and two-segment messages together stay under 10
    segments a second at a fake Twilio refusing more (429, error 20429).

    Tolerance: the fake allows 12, one two-segment message more: it runs in this process,
    where its timing can slip by more than the 1 % the pace leaves.
    """
    twilio = FakeTwilio(limit=12)
    long_text = "Le budget participatif de la Région : " + "votez pour vos projets ! " * 5
    with LocalServer(twilio.asgi()) as server:
        settings = replace(Settings.from_env({}, dotenv=None), database_url=database[0],
                           twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                           twilio_from="+33756000000", twilio_api_url=server.url,
                           twilio_segments_per_second=10.0)
        sender = TwilioSender(settings)
        try:
            async with App.open(settings, clock=clock, schema=database[1],
                                senders={"sms": sender}) as app:
                def insert(conn: Any) -> None:
                    conn.execute(outbox.insert(), [queue_values(
                        participant_id=None, channel="sms", address=f"+336120000{n:02d}",
                        reply=Reply(long_text if n % 2 else f"Rappel {n}"), now=clock(),
                        bulk=True) for n in range(16)])

                await app.db.run(insert)
                stopping = asyncio.Event()
                loop = asyncio.create_task(app.dispatcher.channels["sms"].run(stopping))
                await eventually(lambda: len(twilio.messages) >= 16 or twilio.flooded,
                                 "every SMS, or a 429")
                stopping.set()
                await loop
        finally:
            await sender.close()
    assert twilio.flooded == 0
    assert sum(m.segments for m in twilio.messages) == 8 * 1 + 8 * 2
    most = 0
    for last in twilio.messages:  # segments that arrived within a second up to each one
        most = max(most, sum(m.segments for m in twilio.messages
                             if last.arrived_at - 1.0 < m.arrived_at <= last.arrived_at))
    assert most <= 12
