"""Build the SQLAlchemy engine; the only place with dialect-specific connection setup.

SQLite: WAL, a 30 s busy timeout, foreign keys, synchronous=NORMAL, and robson emits BEGIN
itself (pysqlite's own transaction handling is switched off) so that a write transaction
starts with BEGIN IMMEDIATE: it takes the write lock up front, which makes read-then-write
units safe between processes and means a lock upgrade can never fail with "database is locked".
PostgreSQL: write transactions take one transaction-level advisory lock, the same serialization.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from robson.errors import StoreError

BUSY_TIMEOUT_SECONDS = 30
WRITE_OPTION = "robson_write"
# Any constant works; it only has to be the same in every robson process.
_PG_WRITE_LOCK_KEY = 0x726F6273  # "robs"


def safe_url(url: str | URL) -> str:
    """Return url with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def build_engine(url: str | URL) -> Engine:
    """Create an engine for url with robson's connection settings; raise StoreError for a bad URL."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", _configure_sqlite_connection)
            event.listen(engine, "begin", _begin_sqlite)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
            if parsed.get_backend_name() == "postgresql":
                event.listen(engine, "begin", _begin_postgresql)
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise StoreError(f"cannot use database URL {safe_url(url)}: {e}") from e
    return engine


def write_connection(engine: Engine) -> Connection:
    """Return a connection whose next transaction is a serialized write transaction."""
    return engine.connect().execution_options(**{WRITE_OPTION: True})


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to the "begin" listener below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any, monotonic: Any = time.monotonic, pause: Any = time.sleep) -> None:
    """Put the file in WAL mode unless it already is (the usual case: no lock needed then).

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once, without
    its busy handler, when another connection is opening or switching the same fresh file; so
    retry here until the busy timeout, as the handler would have.
    """
    deadline = monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or monotonic() >= deadline:
                raise
        pause(delay)
        delay = min(delay * 2, 0.2)


def _begin_sqlite(connection: Connection) -> None:
    writing = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _begin_postgresql(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE_OPTION, False):
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK_KEY})")
