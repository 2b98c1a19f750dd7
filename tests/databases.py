"""The test database, on either backend: what ROBSON_DB is set to, and its rows read without robson's code.

A target is a SQLite file (a Path) or a PostgreSQL URL (a str). Tests compare rows before and
after a command, count them, or plant a row robson would never write; they do it through these
helpers so the same test runs on both backends.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

Target = Path | str


def is_postgresql(target: Target) -> bool:
    return isinstance(target, str) and target.startswith("postgresql")


@contextmanager
def raw_connection(target: Target) -> Iterator[Any]:
    """A DB-API connection to the target (sqlite3 or psycopg), committed when the block ends."""
    if is_postgresql(target):
        import psycopg

        with psycopg.connect(_libpq_url(str(target))) as connection:  # commits on a clean exit
            yield connection
        return
    with closing(sqlite3.connect(target)) as connection, connection:
        yield connection


def fetch(target: Target, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run a query with :named parameters; return its rows as dicts."""
    with raw_connection(target) as connection:
        cursor = connection.execute(_paramstyle(target, sql, params), dict(params or {}))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def execute(target: Target, sql: str, params: Mapping[str, Any] | None = None) -> int:
    """Run one statement with :named parameters and commit; return the rows it changed."""
    with raw_connection(target) as connection:
        return connection.execute(_paramstyle(target, sql, params), dict(params or {})).rowcount


def table_names(target: Target) -> list[str]:
    if is_postgresql(target):
        rows = fetch(target, "SELECT table_name AS name FROM information_schema.tables "
                             "WHERE table_schema = 'public' ORDER BY table_name")
    else:
        rows = fetch(target, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [row["name"] for row in rows]


def dump(target: Target) -> dict[str, list[tuple]]:
    """Every row of every table, for before/after comparisons ({} for a SQLite file not yet made)."""
    if not is_postgresql(target) and not Path(target).exists():
        return {}
    with raw_connection(target) as connection:
        return {name: sorted((tuple(row) for row in connection.execute(f'SELECT * FROM "{name}"').fetchall()), key=repr)
                for name in table_names(target)}


def count(target: Target, table: str) -> int:
    return int(fetch(target, f'SELECT COUNT(*) AS n FROM "{table}"')[0]["n"])


def store_url(target: Target) -> str:
    """The URL robson's SqlStore takes for the target."""
    return str(target) if is_postgresql(target) else f"sqlite:///{target}"


def _paramstyle(target: Target, sql: str, params: Mapping[str, Any] | None) -> str:
    if not params or not is_postgresql(target):
        return sql
    return re.sub(r"(?<!:):([A-Za-z_]\w*)", r"%(\1)s", sql)  # psycopg: %(name)s; '::' casts are kept


def _libpq_url(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def open_store(target: Target, **options: Any) -> Any:
    """A robson SqlStore on the target (for_path for a SQLite file, so its directory is made)."""
    from robson.adapters.store import SqlStore

    return SqlStore(str(target), **options) if is_postgresql(target) else SqlStore.for_path(Path(target), **options)


# A PostgreSQL URL nothing answers on (the discard port on loopback): a command that opens it fails.
UNREACHABLE_URL = "postgresql://robson@127.0.0.1:9/never_opened"


def never_opened_env(target: Target) -> dict[str, str] | None:
    """CliRunner env for a command that must not open the database: on PostgreSQL, a URL nothing answers on (so
    opening it fails the command); on SQLite, None (the test checks that no file was made)."""
    return {"ROBSON_DB": UNREACHABLE_URL} if is_postgresql(target) else None


def file_made(target: Target) -> bool:
    """Whether robson made the SQLite file (always False for a PostgreSQL URL: never_opened_env checks those)."""
    return not is_postgresql(target) and Path(target).exists()


def where(target: Target) -> str:
    """How robson names the target in its messages."""
    if is_postgresql(target):
        from robson.adapters.store.urls import describe_server

        return describe_server(str(target))
    return f"database file {target}"


def copy(source: Target, target: Path) -> Target:
    """Copy a database consistently: SQLite's backup API to the file target, or (PostgreSQL) a new database on the
    same server made from source as its template, named after target's stem. Nothing may be connected to source."""
    if is_postgresql(source):
        import psycopg

        base, _, name = str(source).rpartition("/")
        copied = f"{name}_{target.stem}"
        with psycopg.connect(_libpq_url(f"{base}/postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{copied}" TEMPLATE "{name}"')
        return f"{base}/{copied}"
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(target)) as duplicate:
        original.backup(duplicate)
    return target

