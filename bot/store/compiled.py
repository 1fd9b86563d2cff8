"""Hot statements compiled once and run straight on the SQLite driver.

SQLAlchemy Core stays the source of every statement (and of the PostgreSQL path); on SQLite,
where the database call itself takes microseconds, the engine's per-execution bookkeeping
costs more than the work. `Runner` compiles each statement once for the connection's dialect,
applies the same type conversions SQLAlchemy would (UTC datetimes), and on SQLite executes
the SQL text on the DB-API cursor of the very same connection and transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler


class Row(tuple[Any, ...]):
    """A result row readable by position and by column name."""

    _index: Mapping[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None


class Compiled:
    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.statement = statement
        self.sql = str(compiled)
        self.names: Sequence[str] = getattr(compiled, "positiontup", None) or ()
        # SQLAlchemy's own converters for each parameter (UTC datetimes to SQLite text...),
        # asked of each bound parameter's type through public API.
        self.binds: list[Callable[[Any], Any] | None] = [
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
            for n in self.names]
        # The columns a SELECT selects, or those an INSERT/UPDATE returns.
        columns: list[Any] = list(getattr(statement, "selected_columns", None)
                                  or getattr(statement, "exported_columns", None) or ())
        self.results: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        index = {getattr(c, "name", str(n)): n for n, c in enumerate(columns)}
        self.row = type("Row", (Row,), {"_index": index, "__slots__": ()})

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        return [bind(values[name]) if bind else values[name]
                for name, bind in zip(self.names, self.binds, strict=True)]

    def convert(self, raw: Sequence[Any]) -> Row:
        row: Row = self.row(
            value if process is None else process(value)
            for value, process in zip(raw, self.results, strict=True))
        return row


class Runner:
    """Executes prebuilt statements: straight on the driver for SQLite, else via SQLAlchemy."""

    def __init__(self, conn: Connection, statements: Mapping[str, Executable]) -> None:
        self.direct = conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite"
        self.statements = dict(statements)
        self.compiled = ({name: Compiled(stmt, conn.dialect) for name, stmt in statements.items()}
                         if self.direct else {})

    def execute(self, conn: Connection, name: str, values: Mapping[str, Any]) -> int:
        """Run a write; return the number of rows it changed."""
        if not self.direct:
            return conn.execute(self.statements[name], dict(values)).rowcount or 0
        compiled = self.compiled[name]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, compiled.parameters(values))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def all(self, conn: Connection, name: str, values: Mapping[str, Any]) -> list[Any]:
        if not self.direct:
            return list(conn.execute(self.statements[name], dict(values)).all())
        compiled = self.compiled[name]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, compiled.parameters(values))
            return [compiled.convert(raw) for raw in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, conn: Connection, name: str, values: Mapping[str, Any]) -> Any:
        rows = self.all(conn, name, values)
        return rows[0] if rows else None
