"""The connections the store runs its SQL on: one interface, two ways to reach a database.

robson's statements are plain SQL text with :named parameters, written once for SQLite (3.35 or
newer) and PostgreSQL (session.py, locks.py). They run on:
- `SqliteDatabase`: a SQLite file through the standard library's sqlite3. No SQLAlchemy import:
  a command that reads the book starts in a fraction of the time (SQLAlchemy's import alone is
  ~200 ms; the whole `robson operation status` answers in less).
- `EngineDatabase`: any other URL (PostgreSQL) through a SQLAlchemy engine, each statement
  wrapped in text(); also SQLite URLs with query options or in memory.
Migrations (SQLAlchemy Core, migrations.py) run through a SQLAlchemy engine on either, and only
when the database is new or behind this version of robson.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, Protocol

from robson.adapters.store import sqlite

Params = Mapping[str, Any]


class Rows:
    """A statement's answer: rows with their columns as attributes (row.status), and the count it changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any | None:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class Connection(Protocol):
    dialect: str

    def execute(self, sql: str, params: Params | None = None) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...


@cache
def _row_type(columns: tuple[str, ...]) -> type:
    """A tuple type with the columns as attributes and `_mapping`, as SQLAlchemy's rows have."""
    base = namedtuple("Row", columns, rename=True)  # type: ignore[misc]  # rename: a column named like a keyword
    return type("Row", (base,), {"__slots__": (), "_mapping": property(lambda row: dict(zip(columns, row)))})


class _SqliteConnection:
    """One sqlite3 connection in one transaction."""

    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    def execute(self, sql: str, params: Params | None = None) -> Rows:
        cursor = self._raw.execute(sql, params or {})
        try:
            if cursor.description is None:
                return Rows([], cursor.rowcount)
            make = _row_type(tuple(column[0] for column in cursor.description))._make
            rows = [make(row) for row in cursor.fetchall()]
            return Rows(rows, cursor.rowcount)
        finally:
            cursor.close()

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._raw.executemany(sql, rows)


class SqliteDatabase:
    """A SQLite file through sqlite3: connections kept for reuse (several at once when threads or
    nested units need them), each used by one thread at a time."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    @contextmanager
    def connection(self, *, write: bool) -> Iterator[Connection]:
        """Yield a connection inside a transaction: BEGIN IMMEDIATE to write, a snapshot to read;
        commit when the block ends, roll back if it raises."""
        raw = self._take()
        reusable = False
        try:
            raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteConnection(raw)
            except BaseException:
                raw.rollback()
                reusable = True
                raise
            if write:
                raw.commit()
            else:
                raw.rollback()
            reusable = True
        finally:
            self._give_back(raw, reusable)

    def schema_version(self) -> int:
        """Return the schema version recorded in the file (0 for a file with no robson schema)."""
        raw = self._take()
        reusable = False
        try:
            found = raw.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
            version = raw.execute("SELECT max(version) FROM schema_version").fetchone()[0] if found else 0
            reusable = True
        finally:
            self._give_back(raw, reusable)
        return int(version or 0)

    def close(self) -> None:
        """Close every idle connection; the last one to close checkpoints the WAL into the file."""
        with self._guard:
            idle, self._idle = self._idle, []
        for raw in idle:
            raw.close()

    def _take(self) -> sqlite3.Connection:
        with self._guard:
            if self._idle:
                return self._idle.pop()
        return sqlite.connect(self.path)

    def _give_back(self, raw: sqlite3.Connection, reusable: bool) -> None:
        if not reusable:  # in an unknown state: never handed out again
            raw.close()
            return
        with self._guard:
            self._idle.append(raw)


class _EngineConnection:
    """One SQLAlchemy connection in one transaction; statements go through text()."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.dialect = connection.dialect.name

    def execute(self, sql: str, params: Params | None = None) -> Rows:
        result = self._connection.execute(_text(sql), params or {})
        rows = result.all() if result.returns_rows else []
        return Rows(rows, result.rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._connection.execute(_text(sql), list(rows))


@cache
def _text(sql: str) -> Any:
    from sqlalchemy import text

    return text(sql)


class EngineDatabase:
    """Any database SQLAlchemy reaches (PostgreSQL), through one engine and its pool."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @contextmanager
    def connection(self, *, write: bool) -> Iterator[Connection]:
        from robson.adapters.store.engine import write_connection

        with (write_connection(self.engine) if write else self.engine.connect()) as connection:
            transaction = connection.begin()
            try:
                yield _EngineConnection(connection)
            except BaseException:
                transaction.rollback()
                raise
            if write:
                transaction.commit()
            else:
                transaction.rollback()

    def schema_version(self) -> int:
        from robson.adapters.store import migrations

        with self.engine.connect() as connection:
            return migrations.current_version(connection)

    def close(self) -> None:
        self.engine.dispose()
