"""SqlStore: the Store port over robson's SQL schema, on a SQLite file (or PostgreSQL, by URL).

A SQLite file is reached through the standard library (database.SqliteDatabase) and any other URL
through SQLAlchemy (database.EngineDatabase); the statements are the same. SQLAlchemy and the
SQLModel table models are imported only to create or migrate a database, or for a URL.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robson.adapters.store import schema
from robson.adapters.store.database import EngineDatabase, SqliteDatabase
from robson.adapters.store.session import SqlSession
from robson.adapters.store.urls import describe_server, redact
from robson.errors import DamagedRecord, StoreError

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

    from robson.adapters.store.locks import Lease

_SQLITE_FILE_URL = "sqlite:///"


class SqlStore:
    """The robson database; opened (and migrated if behind) on first use, once per instance."""

    def __init__(self, url: str | URL, *, path: Path | None = None, prepared_statements: bool = True,
                 lease_seconds: float | None = None) -> None:
        """prepared_statements=False: no server-side prepared statements (PostgreSQL behind PgBouncer in
        transaction mode). lease_seconds: how long a lock outlives a holder that stops renewing it."""
        self._url = url
        self._lease_seconds = lease_seconds
        self.leases: set[Lease] = set()  # the locks held through this store, checked before each write
        self.url = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        self._prepared_statements = prepared_statements
        # A plain SQLite file: robson's own connections. Anything else (a URL with options, in memory): SQLAlchemy.
        self._path = path if path is not None else _sqlite_file(self.url)
        self._database: SqliteDatabase | EngineDatabase | None = None
        self._engine: Engine | None = None
        self._opening = threading.Lock()  # scan's fetch threads may be the first to read

    @classmethod
    def for_path(cls, path: Path, *, lease_seconds: float | None = None) -> SqlStore:
        """Return a store on the SQLite file at path, creating its directory; raise StoreError."""
        path = Path(path).expanduser().absolute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the database directory {path.parent}: {e.strerror}") from e
        # The path is kept as it is: a '?' or '%' in it stays part of the file name.
        return cls(f"{_SQLITE_FILE_URL}{path}", path=path, lease_seconds=lease_seconds)

    def __repr__(self) -> str:
        return f"SqlStore({self._shown_url()!r})"

    @property
    def lease_seconds(self) -> float:
        """How long a lock outlives a holder that stops renewing it (locks.LEASE_SECONDS unless configured)."""
        if self._lease_seconds is None:
            from robson.adapters.store.locks import LEASE_SECONDS

            return LEASE_SECONDS
        return float(self._lease_seconds)

    @property
    def where(self) -> str:
        """Name the database for messages: its file, or the server and database (never the password)."""
        if self._path is not None:
            return f"database file {self._path}"
        if self._is_postgresql():
            return describe_server(self.url)
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self._url)
        except ArgumentError:
            url = None
        if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return f"database file {url.database}"
        return f"database {self._shown_url()}"

    @property
    def engine(self) -> Engine:
        """A SQLAlchemy engine on this database, migrated to the latest schema (created on first use).

        Commands on a SQLite file never need it; migrations, URLs and schema inspection do."""
        if self._engine is None:
            from robson.adapters.store import migrations
            from robson.adapters.store.engine import build_engine

            if self._path is not None:
                with self._database_errors():
                    self._refuse_a_foreign_file()
            engine = build_engine(self._sqlalchemy_url(), prepared_statements=self._prepared_statements)
            try:
                with self._database_errors():
                    migrations.upgrade(engine, where=self.where)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[SqlSession]:
        """Open a write transaction serialized across processes; commit on success, roll back on error.

        Raise LeaseLost, writing nothing, once a lock this store holds can no longer be trusted: every
        write (and every order, recorded before it is sent) of a holder that lost its lease is refused."""
        self.ensure_locks()
        with self.unguarded_transaction() as session:
            yield session

    @contextmanager
    def unguarded_transaction(self) -> Iterator[SqlSession]:
        """A write transaction that does not look at the leases: for the lease code itself (renew, release)."""
        database = self._opened()
        with self._database_errors(), database.connection(write=True) as connection:
            yield SqlSession(connection, writable=True)

    def ensure_locks(self) -> None:
        """Raise LeaseLost if a lock held through this store can no longer be trusted (renewing any that is due)."""
        for lease in list(self.leases):
            lease.ensure()

    @contextmanager
    def read(self) -> Iterator[SqlSession]:
        """Open a read session: one consistent snapshot that never blocks writers."""
        database = self._opened()
        with self._database_errors(), database.connection(write=False) as connection:
            yield SqlSession(connection, writable=False)

    def lock(self, name: str, *, what: str, wait_seconds: float = 0) -> AbstractContextManager[Lease]:
        """Hold a named lock (a lease, renewed in the background) for a block; raise AlreadyRunning if another
        process holds it past wait_seconds, LeaseLost if the lease could not be kept (see locks.py)."""
        from robson.adapters.store import locks

        return locks.hold(self, name, what=what, wait_seconds=wait_seconds, ttl=self.lease_seconds)

    def schema_version(self) -> int:
        """Return the schema version of the database (after any automatic migration)."""
        database = self._opened()
        with self._database_errors():
            return database.schema_version()

    def close(self) -> None:
        """Close the connections (SQLite checkpoints its WAL as the last one closes); reopened if used again."""
        database, self._database = self._database, None
        engine, self._engine = self._engine, None
        if database is not None:
            database.close()
        if engine is not None:
            engine.dispose()

    def _opened(self) -> SqliteDatabase | EngineDatabase:
        """Return the database, opening it the first time: refuse another application's file, refuse a
        newer schema, and migrate an older one (the only time a SQLite file needs SQLAlchemy)."""
        if self._database is not None:
            return self._database
        with self._opening:
            if self._database is None:
                self._database = self._open()
            return self._database

    def _open(self) -> SqliteDatabase | EngineDatabase:
        if self._path is None:
            return EngineDatabase(self.engine)
        with self._database_errors():
            self._refuse_a_foreign_file()
            database = SqliteDatabase(str(self._path))
            try:
                version = database.schema_version()
                schema.check_not_newer(version)
                if version < schema.LATEST_VERSION:
                    self.engine  # noqa: B018  (creates or migrates the schema)
                    self._engine.dispose()
                    self._engine = None
            except BaseException:
                database.close()
                raise
        return database

    def _refuse_a_foreign_file(self) -> None:
        """Look at an existing SQLite file read-only before robson's connection settings (WAL) touch it."""
        path = self._path
        if path is None or not path.is_file() or path.stat().st_size == 0:
            return
        try:
            with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as raw:
                names = [row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                columns = [row[1] for row in raw.execute("PRAGMA table_info(schema_version)")]
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" in str(e):
                raise schema.foreign_database(self.where, f"it is not an SQLite database ({e})") from None
            return  # unreadable for another reason: the real open reports it
        problem = schema.foreign_schema(names, columns)
        if problem:
            raise schema.foreign_database(self.where, problem)

    def _sqlalchemy_url(self) -> str | URL:
        if self._path is None:
            return self._url
        from sqlalchemy import URL

        # A URL object, not text: a '?' or '%' in the path must stay part of the file name.
        return URL.create("sqlite", database=str(self._path))

    def _shown_url(self) -> str:
        if self._path is not None:
            return f"{_SQLITE_FILE_URL}{self._path}"
        return redact(self.url)

    def _is_postgresql(self) -> bool:
        return self._path is None and self.url.split(":", 1)[0].split("+")[0] in ("postgresql", "postgres")

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except DamagedRecord as e:
            if e.message.startswith("database"):
                raise
            raise DamagedRecord(f"{self.where}: {e.message}", hint=e.hint) from None
        except Exception as e:
            reason = _database_error(e)
            if reason is None:
                raise
            if self._is_postgresql():
                from robson.adapters.store import postgres

                raise postgres.refusal(getattr(e, "orig", None) or e, self.url) from None
            hint = None
            if "locked" in reason or "busy" in reason:
                hint = "another robson process kept the database busy too long; try again"
            raise StoreError(f"database error ({self._shown_url()}): {reason}", hint=hint) from e


def _database_error(error: Exception) -> str | None:
    """Return what went wrong in the database driver, or None for an error that is not the database's."""
    if isinstance(error, sqlite3.Error):
        return str(error)
    sqlalchemy_errors: Any = sys.modules.get("sqlalchemy.exc")  # loaded only if SQLAlchemy is in use
    if sqlalchemy_errors is not None and isinstance(error, sqlalchemy_errors.DBAPIError):
        return str(error.orig) if error.orig is not None else str(error)
    return None


def _sqlite_file(url: str) -> Path | None:
    """The file of a plain 'sqlite:///path' URL; None for anything else (options, memory, other databases)."""
    if not url.startswith(_SQLITE_FILE_URL):
        return None
    path = url[len(_SQLITE_FILE_URL):]
    if not path or path == ":memory:" or path.startswith("file:") or any(c in path for c in "?%#"):
        return None
    return Path(path)
