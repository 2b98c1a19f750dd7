"""SqlStore: the Store port over SQLModel tables on SQLite (or PostgreSQL, by URL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine
from sqlalchemy.exc import DBAPIError

from robson.adapters.store import migrations
from robson.adapters.store.engine import build_engine, safe_url, write_connection
from robson.adapters.store.session import SqlSession
from robson.errors import StoreError


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
            engine = build_engine(self._url)
            try:
                with self._database_errors():
                    migrations.upgrade(engine)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

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
        except DBAPIError as e:
            reason = str(e.orig) if e.orig is not None else str(e)
            hint = None
            if "locked" in reason or "busy" in reason:
                hint = "another robson process kept the database busy too long; try again"
            raise StoreError(f"database error ({safe_url(self.url)}): {reason}", hint=hint) from e
