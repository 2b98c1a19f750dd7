"""SQLite connection settings, shared by robson's own connections and the SQLAlchemy engine of migrations.

WAL, a 30 s busy timeout, foreign keys, synchronous=NORMAL; Python's own transaction handling is
switched off (isolation_level None) so that robson emits BEGIN itself: a write transaction starts
with BEGIN IMMEDIATE, which takes the write lock up front, makes read-then-write units safe between
processes, and means a lock upgrade can never fail with "database is locked".
Standard library only: commands that read or write an existing database never import SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

BUSY_TIMEOUT_SECONDS = 30


def connect(path: str) -> sqlite3.Connection:
    """Open path with robson's settings; usable from any thread, one at a time."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        configure(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def configure(dbapi_connection: Any) -> None:
    """Apply robson's settings to a new pysqlite connection (also SQLAlchemy's, on its connect event)."""
    dbapi_connection.isolation_level = None  # BEGIN is robson's: see the module docstring
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def switch_to_wal(cursor: Any, monotonic: Any = time.monotonic, pause: Any = time.sleep) -> None:
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
