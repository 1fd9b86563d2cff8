"""`votz db copy`: a SQLite database with real conversations moves to PostgreSQL and back
with the same rows and checksums in every table, and Votz carries on on the copy."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.config import Settings
from bot.errors import ConfigError
from bot.store.copy import copy_database
from bot.store.tables import outbox, participants
from tests.conftest import CAMPAIGNS, POSTGRES_URL, FixedClock, Person, RecordingSender

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards)."""
    name = f"votz_copy_{uuid.uuid4().hex[:10]}"

    async def ddl(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(ddl(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(ddl(f"DROP DATABASE {name} WITH (FORCE)"))


async def conversations(url: str, clock: FixedClock) -> None:
    settings = replace(Settings.from_env({}, dotenv=None), database_url=url)
    sender = RecordingSender()
    async with App.open(settings, senders={"console": sender}, clock=clock) as app:
        await app.load_campaigns(CAMPAIGNS)
        for n in range(3):
            person = Person(app, sender, address=f"+3360000010{n}")
            await person.onboard()
            await person.say("MENU")
            await person.say("Des bancs à l'ombre près de l'école")  # unknown: asked again
        await app.dispatcher.drain()


async def test_sqlite_to_postgresql_and_back(tmp_path: Path, clock: FixedClock,
                                             postgres_database: str) -> None:
    first = f"sqlite:///{tmp_path / 'first.db'}"
    await conversations(first, clock)
    there = await copy_database(first, postgres_database)
    assert all(c.same for c in there), [c for c in there if not c.same]
    counts = {c.table: c.rows for c in there}
    assert counts["participants"] == 3 and counts["outbox"] > 10
    assert counts["conversations"] == 3 and counts["campaigns"] >= 3
    back = f"sqlite:///{tmp_path / 'back.db'}"
    again = await copy_database(postgres_database, back)
    assert [(c.table, c.rows, c.source_checksum) for c in again] == \
        [(c.table, c.rows, c.source_checksum) for c in there]  # the same data, three times

    with pytest.raises(ConfigError, match=r"the target database is not empty .*--replace"):
        await copy_database(first, postgres_database)
    replaced = await copy_database(first, postgres_database, replace=True)
    assert all(c.same for c in replaced)

    # Votz carries on on the copy: new people get new ids (the sequences moved on).
    settings = replace(Settings.from_env({}, dotenv=None), database_url=postgres_database)
    sender = RecordingSender()
    async with App.open(settings, senders={"console": sender}, clock=clock) as app:
        await Person(app, sender, address="+33600000199").onboard()
        people = await app.db.run(lambda conn: conn.execute(
            select(func.count()).select_from(participants)).scalar_one())
        assert people == 4
        assert await app.db.run(lambda conn: conn.execute(
            select(func.count()).select_from(outbox)).scalar_one()) > counts["outbox"]


async def test_a_broken_copy_is_reported(tmp_path: Path, clock: FixedClock) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    await conversations(source, clock)
    with pytest.raises(ConfigError, match="the same database"):
        await copy_database(source, source)


def test_votz_db_copy_command(tmp_path: Path, postgres_database: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    source = f"sqlite:///{tmp_path / 'votz.db'}"
    chat = subprocess.run([sys.executable, "-m", "bot", "--database-url", source, "chat",
                           "--as", "+33600000001"], input="bonjour\n1\n1\n3\n31000\n",
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert chat.returncode == 0, chat.stderr
    copied = subprocess.run([sys.executable, "-m", "bot", "db", "copy", source,
                             postgres_database], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert "participants               1 rows  same checksum" in copied.stdout
    assert "every table has the same rows and checksum" in copied.stdout
    refused = subprocess.run([sys.executable, "-m", "bot", "db", "copy", source,
                              postgres_database], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=120)
    assert refused.returncode == 2
    assert "the target database is not empty (campaigns 4, participants 1," in refused.stderr
