"""Run units of work against the database: one sync Core function, one transaction.

Every query in Votz is a plain function `fn(conn: Connection) -> T` written with SQLAlchemy
Core. `Database.run(fn)` executes it inside one transaction:

- `sqlite:///…` (the default): a sync engine whose single connection lives in one worker
  thread; the whole unit of work costs one thread hop. SQLite has one writer anyway, so one
  thread loses nothing, and `BEGIN IMMEDIATE` keeps other processes (the CLI) from deadlocking.
- `sqlite+aiosqlite:///…` and `postgresql+asyncpg://…`: an AsyncEngine; the function runs
  through `AsyncConnection.run_sync`. asyncpg is the scale-out path (several processes).

Why not aiosqlite by default: each statement through SQLAlchemy's aiosqlite adapter costs
several thread hops, and an inbound message needs about six statements; `bench/inbound.py
--database-url sqlite+aiosqlite:///…` shows the difference.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.errors import ConfigError

T = TypeVar("T")
log = logging.getLogger("votz.db")

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
BUSY_SECONDS = 10.0  # how long a write waits for another process's lock on the SQLite file


def _sqlite_setup(engine: Engine, busy_seconds: float = BUSY_SECONDS) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


GROUP_LIMIT = 64  # units sharing one commit at most


Unit = tuple[Callable[[Connection], Any], asyncio.Future[Any]]  # work and its waiter
Settled = tuple[asyncio.Future[Any], bool, Any]


def _settle(items: list[Settled]) -> None:
    """Hand each unit's outcome to its waiter (on the event loop's thread)."""
    for future, ok, value in items:
        if future.done():  # cancelled meanwhile: the unit ran anyway
            continue
        try:
            if ok:
                future.set_result(value)
            else:
                if isinstance(value, StopIteration):  # asyncio refuses it as an exception
                    value = RuntimeError(f"unit of work raised {value!r}")
                future.set_exception(value)
        except Exception:  # never leave the others of the group waiting
            log.exception("db.group.settle_failed")
            if not future.done():
                future.set_exception(RuntimeError("unit of work outcome lost"))


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean asyncpg; other URLs are kept."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    return url


class Database:
    """Runs sync Core functions in one transaction on SQLite or PostgreSQL."""

    def __init__(self, url: str, *, schema: str | None = None,
                 busy_seconds: float = BUSY_SECONDS, application_name: str = "votz") -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise ConfigError(f"VOTZ_DATABASE_URL {url!r} is not a database URL "
                              "(sqlite:///votz.db, postgresql://user@host/db)") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"VOTZ_DATABASE_URL: {self.dialect} is not supported "
                              "(use SQLite or PostgreSQL)")
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        # Units waiting to share one SQLite transaction (see run_grouped).
        self._group: list[Unit] = []
        self._group_lock = threading.Lock()
        self._closing = False
        if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
            # Statement parameters hold phone numbers and messages: never in error texts.
            self._sync = create_engine(self.url, hide_parameters=True)
            _sqlite_setup(self._sync, busy_seconds)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="votz-db")
        else:
            kwargs: dict[str, Any] = {}
            if self.dialect == "postgresql":
                # pre_ping: a connection the server dropped (a failover, pg_terminate_backend)
                # is replaced when taken from the pool instead of failing one transaction.
                kwargs = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}
                server_settings = {"application_name": application_name[:63]}
                if schema:
                    server_settings["search_path"] = schema
                kwargs["connect_args"] = {"server_settings": server_settings}
            self._async = create_async_engine(self.url, hide_parameters=True, **kwargs)
            if self.dialect == "sqlite":
                _sqlite_setup(self._async.sync_engine, busy_seconds)

    def _run_in_thread(self, fn: Callable[[Connection], T]) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            assert self._sync is not None
            conn = self._local.conn = self._sync.connect()
        try:
            with conn.begin():
                return fn(conn)
        except BaseException:
            raw = conn.connection.dbapi_connection
            if raw is not None and getattr(raw, "in_transaction", False):
                raw.rollback()  # a failed COMMIT can leave SQLite inside the transaction
            raise

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(conn)` in one transaction; commit if it returns, roll back if it raises."""
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._run_in_thread, fn)
        if self._async is None:
            raise RuntimeError("the database is closed")
        async with self._async.begin() as conn:
            return await conn.run_sync(fn)

    async def run_grouped(self, fn: Callable[[Connection], T]) -> T:
        """Like `run`, but on SQLite the unit may share its transaction and its commit with
        the other units queued meanwhile (group commit), each in its own savepoint: one that
        raises rolls back alone and gets its exception; the others commit. It returns only
        once the commit is done, so an answer never reports work that could still be lost.

        The inbound pipeline uses it: under a burst the one SQLite writer commits once per
        group instead of once per message. Elsewhere it is `run`.
        """
        if self._executor is None:
            return await self.run(fn)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._group_lock:
            if self._closing:
                raise RuntimeError("the database is closed")
            self._group.append((fn, future))
            first = len(self._group) == 1
        if first:
            self._executor.submit(self._run_group)
        return await future

    def _take_group(self) -> list[Unit]:
        with self._group_lock:
            units, self._group = self._group[:GROUP_LIMIT], self._group[GROUP_LIMIT:]
            if self._group and not self._closing:  # more than a group's worth: the rest next,
                assert self._executor is not None  # after whatever else is queued
                self._executor.submit(self._run_group)
        return units

    def _run_group(self) -> None:
        units = self._take_group()
        if units:
            self._commit_group(units)

    def _commit_group(self, units: list[Unit]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            if len(units) == 1:
                outcomes.append((True, self._run_in_thread(units[0][0])))
            else:
                def each(conn: Connection) -> None:
                    # Savepoints straight on the driver: SQLAlchemy's begin_nested() cost
                    # half as much as the units themselves in bench/inbound.py.
                    raw = conn.connection.dbapi_connection
                    assert raw is not None
                    for fn, _ in units:
                        raw.execute("SAVEPOINT unit")
                        try:
                            outcomes.append((True, fn(conn)))
                        except Exception as exc:
                            if not raw.in_transaction:
                                # SQLite rolled the whole transaction back itself (disk full,
                                # I/O error): the group fails, with this unit's cause.
                                raise
                            raw.execute("ROLLBACK TO unit")  # this unit alone is undone
                            outcomes.append((False, exc))
                        raw.execute("RELEASE unit")

                self._run_in_thread(each)
        except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the group is kept
            outcomes = [(False, exc)] * len(units)
        by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = {}
        for (_, future), (ok, value) in zip(units, outcomes, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, ok, value))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # that event loop is closed: nobody waits any more
                log.warning("db.group.loop_closed units=%d", len(items))

    async def close(self) -> None:
        if self._executor is not None:
            def _close() -> None:
                # Units still waiting for a group commit are committed first, not dropped.
                with self._group_lock:
                    self._closing = True
                while units := self._take_group():
                    self._commit_group(units)
                conn: Connection | None = getattr(self._local, "conn", None)
                if conn is not None:
                    conn.close()
            await asyncio.get_running_loop().run_in_executor(self._executor, _close)
            self._executor.shutdown(wait=True)
            self._executor = None
            assert self._sync is not None
            self._sync.dispose()
        if self._async is not None:
            await self._async.dispose()
