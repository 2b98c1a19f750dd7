"""What the code knows of the schema without SQLAlchemy: its version, and how to tell robson's database.

Read on every open, so it stays light: the migrations (SQLAlchemy) are imported only when a
database is created or behind this version.
"""

from __future__ import annotations

from collections.abc import Mapping

from robson.errors import ForeignDatabase, InvalidInput, StoreError

LATEST_VERSION = 9  # the last migration's version (migrations.py checks it at import)
ID_LENGTH = 40  # every id column is VARCHAR(40)

# The longest text each VARCHAR(n) column holds, as the table models (tables.py) declare it; a test checks
# that the two agree. PostgreSQL refuses a longer value and SQLite keeps it: robson refuses it first, on both.
# (locks: locks.py writes and checks its own rows.)
MAX_LENGTHS: dict[str, dict[str, int]] = {
    "schema_version": {"applied_at": 32},
    "intents": {"id": 40, "symbol": 20, "side": 4, "status": 12, "source": 12, "timeframe": 8, "created_at": 32,
                "updated_at": 32, "validated_at": 32, "operation_id": 40, "entry_order": 8, "expires_at": 32},
    "operations": {"id": 40, "intent_id": 40, "symbol": 20, "side": 4, "status": 12, "mode": 8, "opened_at": 32,
                   "updated_at": 32, "quote_asset": 20, "close_reason": 32, "closed_at": 32, "last_checked_at": 32},
    "orders": {"client_order_id": 64, "exchange": 20, "symbol": 20, "side": 4, "type": 20, "status": 20,
               "created_at": 32, "updated_at": 32, "fee_asset": 20, "exchange_order_id": 64, "intent_id": 40,
               "operation_id": 40},
    "balances": {"account": 40, "asset": 20},
    "audit_events": {"at": 32, "kind": 32, "intent_id": 40, "operation_id": 40},
    "candles": {"symbol": 20, "timeframe": 8},
    "signals": {"id": 40, "symbol": 20, "timeframe": 8, "side": 4, "status": 12, "detected_at": 32, "updated_at": 32,
                "intent_id": 40},
    "backtests": {"id": 40, "created_at": 32},
    "partial_exits": {"operation_id": 40, "reason": 32, "at": 32, "client_order_id": 64},
    "alerts": {"id": 40, "symbol": 20, "direction": 8, "plan_id": 40, "status": 12, "created_at": 32, "updated_at": 32,
               "fired_at": 32},
}
_SHOWN = 40  # characters of a refused value shown in the message


def check_lengths(table: str, row: Mapping[str, object]) -> None:
    """Raise InvalidInput (exit 2) naming the column if a value is longer than its column holds."""
    for column, limit in MAX_LENGTHS.get(table, {}).items():
        value = row.get(column)
        if isinstance(value, str) and len(value) > limit:
            shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
            raise InvalidInput(f"{column.replace('_', ' ')} '{shown}' is {len(value)} characters long; "
                               f"robson keeps at most {limit} ({table}.{column})")


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
    """Raise StoreError naming this host if the database was written by a newer robson (it must upgrade)."""
    if version > LATEST_VERSION:
        import socket

        raise StoreError(
            f"database schema v{version} is newer than this robson (v{LATEST_VERSION}); upgrade robson on this host "
            f"({socket.gethostname()}) before using this database",
            hint="another host already runs a newer robson on this database: every host sharing one book must "
                 "run the same robson version (the newer one migrated it; nothing was changed here)",
        )
