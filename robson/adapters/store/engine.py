"""Build the SQLAlchemy engine: for PostgreSQL, and for migrations (on any database).

SQLite connections get the settings of robson.adapters.store.sqlite (WAL, busy timeout, BEGIN
IMMEDIATE for writes). PostgreSQL (psycopg 3 for a plain postgresql:// URL): write transactions
take one transaction-level advisory lock, the same serialization; every other transaction is
REPEATABLE READ, READ ONLY, so a read session sees one snapshot from its first statement to its
end, as on SQLite.
"""

from __future__ import annotations

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from robson.adapters.store import postgres, sqlite, urls
from robson.errors import StoreError

WRITE_OPTION = "robson_write"
# Any constant works; it only has to be the same in every robson process.
_PG_WRITE_LOCK_KEY = 0x726F6273  # "robs"


def safe_url(url: str | URL) -> str:
    """Return url with any password hidden (also a ?password= in its query), for messages."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    return urls.redact(text)


def build_engine(url: str | URL, *, prepared_statements: bool = True) -> Engine:
    """Create an engine for url with robson's connection settings; raise StoreError for a bad URL or a missing driver.

    prepared_statements=False turns psycopg's server-side prepared statements off (PgBouncer in
    transaction mode)."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": sqlite.BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", lambda dbapi_connection, _record: sqlite.configure(dbapi_connection))
            event.listen(engine, "begin", _begin_sqlite)
        elif postgres.is_postgresql(parsed.drivername):
            parsed = postgres.driver_url(parsed)
            engine = create_engine(parsed, pool_pre_ping=True,
                                   connect_args=postgres.connect_args(parsed, prepared_statements=prepared_statements))
            event.listen(engine, "begin", _begin_postgresql)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except ImportError as e:
        if postgres.is_postgresql(parsed.drivername):
            raise postgres.missing_driver(text, e) from None
        raise StoreError(f"cannot use database URL {safe_url(text)}: {urls.scrub(str(e), text)}") from None
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise StoreError(f"cannot use database URL {safe_url(text)}: {urls.scrub(str(e), text)}") from None
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
    else:  # the first statement of the transaction, so it may still set how the transaction sees the data
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
