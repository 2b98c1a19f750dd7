"""SqlStore: the Store port over SQLModel tables on SQLite (or PostgreSQL, by URL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from robson.adapters.store import migrations
from robson.adapters.store.engine import build_engine, safe_url, write_connection
from robson.adapters.store.session import SqlSession
from robson.errors import DamagedRecord, StoreError


class SqlStore:
    """The robson database; the engine is created and migrated on first use, once per instance."""

    def __init__(self, url: str | URL) -> None:
        self._url = url
        self.url = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        self._engine: Engine | None = None

    @classmethod
    def for_path(cls, path: Path) -> SqlStore:
        """Return a store on the SQLite file at path, creating its directory; raise StoreError."""
        path = Path(path).expanduser().absolute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the database directory {path.parent}: {e.strerror}") from e
        # A URL object, not text: a '?' or '%' in the path must stay part of the file name.
        return cls(URL.create("sqlite", database=str(path)))

    def __repr__(self) -> str:
        return f"SqlStore({safe_url(self.url)!r})"

    @property
    def engine(self) -> Engine:
        """Return the engine, creating it and applying pending migrations the first time; raise StoreError."""
        if self._engine is None:
            with self._database_errors():
                self._refuse_a_foreign_file()
            engine = build_engine(self._url)
            try:
                with self._database_errors():
                    migrations.upgrade(engine, where=self.where)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    @property
    def where(self) -> str:
        """Name the database for messages: its file, or its URL without the password."""
        url = _parse_url(self._url)
        if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return f"database file {url.database}"
        return f"database {safe_url(self.url)}"

    def _refuse_a_foreign_file(self) -> None:
        """Look at an existing SQLite file read-only before robson's connection settings (WAL) touch it."""
        url = _parse_url(self._url)
        if url is None or url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return
        path = Path(url.database)
        if url.database.startswith("file:") or not path.is_file() or path.stat().st_size == 0:
            return
        try:
            with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as raw:
                names = [row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                columns = [row[1] for row in raw.execute("PRAGMA table_info(schema_version)")]
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" in str(e):
                raise migrations.foreign_database(self.where, f"it is not an SQLite database ({e})") from None
            return  # unreadable for another reason: the real open reports it
        problem = migrations.foreign_schema(names, columns)
        if problem:
            raise migrations.foreign_database(self.where, problem)

    @contextmanager
    def transaction(self) -> Iterator[SqlSession]:
        """Open a write transaction serialized across processes; commit on success, roll back on error."""
        engine = self.engine
        with self._database_errors(), write_connection(engine) as connection, connection.begin():
            yield SqlSession(connection, writable=True)

    @contextmanager
    def read(self) -> Iterator[SqlSession]:
        """Open a read session: one consistent snapshot that never blocks writers."""
        engine = self.engine
        with self._database_errors(), engine.connect() as connection:
            transaction = connection.begin()
            try:
                yield SqlSession(connection, writable=False)
            finally:
                transaction.rollback()

    def lock(self, name: str, *, what: str, wait_seconds: float = 0) -> AbstractContextManager[None]:
        """Hold a named lock across processes for a block; raise AlreadyRunning if a live process has it."""
        from robson.adapters.store import locks

        return locks.hold(self, name, what=what, wait_seconds=wait_seconds)

    def schema_version(self) -> int:
        """Return the schema version of the database (after any automatic migration)."""
        with self._database_errors(), self.engine.connect() as connection:
            return migrations.current_version(connection)

    def close(self) -> None:
        """Close pooled connections; the store reopens them if used again."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except DamagedRecord as e:
            if e.message.startswith("database"):
                raise
            raise DamagedRecord(f"{self.where}: {e.message}", hint=e.hint) from None
        except DBAPIError as e:
            reason = str(e.orig) if e.orig is not None else str(e)
            hint = None
            if "locked" in reason or "busy" in reason:
                hint = "another robson process kept the database busy too long; try again"
            raise StoreError(f"database error ({safe_url(self.url)}): {reason}", hint=hint) from e


def _parse_url(url: str | URL) -> URL | None:
    try:
        return make_url(url)
    except ArgumentError:
        return None
