"""`votz db copy SOURCE TARGET`: every table from one database to another (SQLite ⇄
PostgreSQL), in batches, then a row count and a checksum per table on both sides.

Tables are copied parents first (the schema's foreign-key order), each in primary-key order,
`BATCH` rows per transaction. The target is migrated to the latest schema first, and must
hold no rows unless `replace` is given (then its rows are deleted first). The source must be
at the latest schema too (`votz db upgrade` on it first), so that both have the same columns.
On PostgreSQL the id sequences are moved past the copied ids, so new rows get new ids.

The checksum of a table is a SHA-256 over its rows in primary-key order, each value written
in one canonical form (UTC ISO times, booleans as true/false, floats by repr), so the same
data gives the same checksum on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, text, tuple_
from sqlalchemy.engine import make_url

from bot.errors import ConfigError
from bot.store.db import Database
from bot.store.migrate import migrate
from bot.store.tables import metadata

BATCH = 5_000


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int
    source_checksum: str
    target_checksum: str

    @property
    def same(self) -> bool:
        return self.source_checksum == self.target_checksum


Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in all


def tables() -> list[Table]:
    return list(metadata.sorted_tables)


def _key(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _read(conn: Connection, *, query: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


def _write(conn: Connection, *, table: Table, rows: list[dict[str, Any]]) -> None:
    conn.execute(table.insert(), rows)


async def read_batches(db: Database, table: Table,
                       size: int = BATCH) -> AsyncIterator[list[dict[str, Any]]]:
    """The table's rows in primary-key order, `size` at a time (keyset pagination)."""
    key = _key(table)
    last: tuple[Any, ...] | None = None
    while True:
        query = select(table).order_by(*key).limit(size)
        if last is not None:
            query = query.where(tuple_(*key) > tuple_(*last)) if len(key) > 1 \
                else query.where(key[0] > last[0])
        rows = await db.run(partial(_read, query=query))
        if not rows:
            return
        yield rows
        last = tuple(rows[-1][c.name] for c in key)


async def checksum(db: Database, table: Table) -> tuple[int, str]:
    """(rows, SHA-256 of them in canonical form)."""
    digest = hashlib.sha256()
    count = 0
    names = [c.name for c in table.columns]
    async for rows in read_batches(db, table):
        for row in rows:
            digest.update(json.dumps([_canonical(row[n]) for n in names]).encode())
            digest.update(b"\n")
        count += len(rows)
    return count, digest.hexdigest()


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _reset_sequences(conn: Connection) -> None:
    """PostgreSQL: each id sequence past the largest id copied."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables():
        for column in table.primary_key.columns:
            if not column.autoincrement or len(table.primary_key.columns) != 1:
                continue
            sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": table.name, "c": column.name}).scalar()
            if sequence is None:
                continue
            top = conn.execute(select(func.max(column))).scalar()
            if top is not None:
                conn.execute(text("SELECT setval(:s, :v)"), {"s": sequence, "v": int(top)})


async def _at_head(db: Database) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from bot.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    def current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    return bool(await db.run(current) == head)


async def copy_database(source_url: str, target_url: str, *, replace: bool = False,
                        batch: int = BATCH, progress: Progress | None = None) -> list[Copied]:
    """Copy every table; the per-table counts and checksums of both sides."""
    if make_url(source_url) == make_url(target_url):
        raise ConfigError("the source and the target are the same database")
    source = Database(source_url)
    target = Database(target_url)
    try:
        if not await _at_head(source):
            raise ConfigError("the source database is not at the latest schema: run "
                              "`votz --database-url SOURCE db upgrade` first")
        await migrate(target)
        filled = await target.run(lambda conn: {t.name: _count(conn, t) for t in tables()})
        holding = {name: n for name, n in filled.items() if n}
        if holding and not replace:
            raise ConfigError("the target database is not empty (" + ", ".join(
                f"{name} {n}" for name, n in holding.items()) + "): add --replace to delete "
                "its rows first")
        if holding:
            await target.run(lambda conn: [conn.execute(delete(t))
                                           for t in reversed(tables())])
        sizes = await source.run(lambda conn: {t.name: _count(conn, t) for t in tables()})
        for table in tables():
            done = 0
            if progress is not None:
                progress(table.name, 0, sizes[table.name])
            async for rows in read_batches(source, table, batch):
                await target.run(partial(_write, table=table, rows=rows))
                done += len(rows)
                if progress is not None:
                    progress(table.name, done, sizes[table.name])
        await target.run(_reset_sequences)
        results = []
        for table in tables():
            rows_in, before = await checksum(source, table)
            rows_out, after = await checksum(target, table)
            if rows_in != rows_out:
                after = f"{after} ({rows_out} rows, not {rows_in})"
            results.append(Copied(table.name, rows_in, before, after))
        return results
    finally:
        await source.close()
        await target.close()
