"""Shared fixtures: a fixed clock, both databases, an app wired to a recording sender."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import App
from bot.channels.base import Inbound, Reply, SendResult, numbered
from bot.config import Settings
from bot.testing.fake_telegram import FakeTelegram
from bot.testing.fake_twilio import FakeTwilio
from bot.testing.server import LocalServer

HERE = Path(__file__).resolve().parent
CAMPAIGNS = HERE / "campaigns"
POSTGRES_URL = os.environ.get(
    "VOTZ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# 2026-03-10 11:00 Paris: a Tuesday, outside any DST change.
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


class FixedClock:
    """A clock tests move by hand; nothing ever sleeps."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class RecordingSender:
    """A channel sender that keeps what it was asked to send."""

    rate = 0.0  # no pacing

    def __init__(self, channel: str = "console") -> None:
        self.channel = channel
        self.sent: list[tuple[str, Reply]] = []

    async def send(self, address: str, reply: Reply) -> SendResult:
        self.sent.append((address, reply))
        return SendResult(provider_id=f"fake-{len(self.sent)}")

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'votz.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) for a fresh database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path), None
        return
    import asyncio

    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL

    async def ddl(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(ddl(f"CREATE SCHEMA {schema}"))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("VOTZ_TEST_POSTGRES") == "skip":
            pytest.skip(f"PostgreSQL unavailable ({exc}); VOTZ_TEST_POSTGRES=skip")
        pytest.fail(f"PostgreSQL at {dsn} is needed by the storage tests: {exc} "
                    "(set VOTZ_TEST_POSTGRES=skip to skip them knowingly)")
    try:
        yield dsn, schema
    finally:
        asyncio.run(ddl(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
async def app(database: tuple[str, str | None], clock: FixedClock,
              sender: RecordingSender) -> AsyncIterator[App]:
    url, schema = database
    settings = replace(Settings.from_env({}, dotenv=None), database_url=url,
                       contact="participation@example.org")
    async with App.open(settings, senders={"console": sender}, clock=clock,
                        schema=schema) as application:
        await application.load_campaigns(CAMPAIGNS)
        yield application


@asynccontextmanager
async def open_sqlite_app(tmp_path: Path, clock: FixedClock, sender: RecordingSender,
                          extra: Mapping[str, str] | None = None) -> AsyncIterator[App]:
    """The app on SQLite with the test campaigns, plus `extra` campaign files (name: YAML)."""
    folder = CAMPAIGNS
    if extra:
        folder = tmp_path / "campaigns"
        shutil.copytree(CAMPAIGNS, folder)
        for name, text in extra.items():
            (folder / name).write_text(text, encoding="utf-8")
    settings = replace(Settings.from_env({}, dotenv=None), database_url=_sqlite_url(tmp_path),
                       contact="participation@example.org")
    async with App.open(settings, senders={"console": sender}, clock=clock) as application:
        await application.load_campaigns(folder)
        yield application


@pytest.fixture
async def sqlite_app(tmp_path: Path, clock: FixedClock,
                     sender: RecordingSender) -> AsyncIterator[App]:
    """The app on SQLite only, for tests about the conversation rather than storage."""
    async with open_sqlite_app(tmp_path, clock, sender) as application:
        yield application


class Person:
    """Talks to Votz like a person on the console and reads the replies (errbot style)."""

    def __init__(self, app: App, sender: RecordingSender, address: str = "+33600000001",
                 channel: str = "console") -> None:
        self.app = app
        self.sender = sender
        self.address = address
        self.channel = channel

    async def say(self, text: str, *, provider_id: str | None = None) -> str:
        """Send `text`; return the one reply (empty string when Votz stays silent)."""
        before = len(self.sender.sent)
        await self.app.pipeline.handle(Inbound(
            channel=self.channel, address=self.address, text=text, provider_id=provider_id,
            received_at=self.app.clock()))
        await self.app.dispatcher.drain()
        replies = [numbered(r) for a, r in self.sender.sent[before:] if a == self.address]
        assert len(replies) <= 1, replies
        return replies[0] if replies else ""

    async def onboard(self, *, age: str = "3", postcode: str = "31000",
                      language: str = "1") -> str:
        await self.say("bonjour")
        await self.say(language)
        await self.say("1")
        await self.say(age)
        return await self.say(postcode)


def code_of(app: App, title: str) -> str:
    """The code (P12) of the published proposal titled `title` in French."""
    for proposal in app.pipeline.catalog.proposals.values():
        if proposal.title["fr"] == title:
            return proposal.code
    raise KeyError(title)


@dataclass
class Proxy:
    """A local HTTP proxy that answers every request itself with `body` and records it."""

    url: str
    seen: list[str]
    body: dict[str, object]


@pytest.fixture
async def http_proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Proxy]:
    """Sets HTTP_PROXY (and clears NO_PROXY) to a recording proxy on loopback."""
    import asyncio
    import json

    proxy = Proxy("", [], {})

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        proxy.seen.append(head.splitlines()[0])
        length = next((int(line.split(":")[1]) for line in head.splitlines()
                       if line.lower().startswith("content-length:")), 0)
        await reader.readexactly(length)
        body = json.dumps(proxy.body).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        yield proxy
    finally:
        server.close()


@pytest.fixture
def fake_telegram() -> Iterator[tuple[FakeTelegram, str]]:
    """A fake Bot API on a loopback port: (the fake, its URL)."""
    fake = FakeTelegram()
    with LocalServer(fake.asgi()) as server:
        yield fake, server.url


@pytest.fixture
def fake_twilio() -> Iterator[tuple[FakeTwilio, str]]:
    """A fake Twilio REST API on a loopback port: (the fake, its URL)."""
    fake = FakeTwilio()
    with LocalServer(fake.asgi()) as server:
        yield fake, server.url
