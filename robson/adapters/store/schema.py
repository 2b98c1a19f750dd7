"""What the code knows of the schema without SQLAlchemy: its version, and how to tell robson's database.

Read on every open, so it stays light: the migrations (SQLAlchemy) are imported only when a
database is created or behind this version.
"""

from __future__ import annotations

from robson.errors import ForeignDatabase, StoreError

LATEST_VERSION = 7  # the last migration's version (migrations.py checks it at import)
ID_LENGTH = 40  # every id column is VARCHAR(40)


def foreign_schema(table_names: list[str], version_columns: list[str]) -> str | None:
    """Return why a database with these tables is not robson's, or None if it is robson's (or empty).

    Every robson schema since v1 has schema_version and intents, created in one transaction.
    """
    names = sorted(name for name in table_names if not name.startswith("sqlite_"))
    if not names:
        return None
    if "schema_version" in names and "intents" in names and {"version", "applied_at", "description"} <= set(version_columns):
        return None
    shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    return f"it holds another application's tables ({shown}) and no robson schema"


def foreign_database(where: str, problem: str) -> ForeignDatabase:
    return ForeignDatabase(f"{where} is not a robson database: {problem}; robson changes nothing in it",
                           hint="point --db or ROBSON_DB at robson's own database file (a new file is created)")


def check_not_newer(version: int) -> None:
    """Raise StoreError if the database was written by a newer robson."""
    if version > LATEST_VERSION:
        raise StoreError(
            f"database schema v{version} is newer than this robson (v{LATEST_VERSION}); upgrade robson",
        )
