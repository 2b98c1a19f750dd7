"""Build the SQLAlchemy engine: for PostgreSQL, and for migrations (on any database).

SQLite connections get the settings of robson.adapters.store.sqlite (WAL, busy timeout, BEGIN
IMMEDIATE for writes). PostgreSQL: write transactions take one transaction-level advisory lock,
the same serialization.
"""

from __future__ import annotations


from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from robson.adapters.store import sqlite
from robson.errors import StoreError

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
            engine = create_engine(parsed, connect_args={"timeout": sqlite.BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", lambda dbapi_connection, _record: sqlite.configure(dbapi_connection))
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


def _begin_sqlite(connection: Connection) -> None:
    writing = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _begin_postgresql(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE_OPTION, False):
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK_KEY})")
