"""Schema versions and the ordered migrations between them.

Each migration is a frozen snapshot written in portable SQLAlchemy Core (or plain SQL that
SQLite and PostgreSQL both accept); never build one from the table models, which follow the
latest schema. `upgrade` applies the pending ones in one serialized write transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)

from robson.adapters.store.engine import write_connection
from robson.adapters.store.schema import LATEST_VERSION, check_not_newer, foreign_database, foreign_schema


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial_tables(connection: Connection) -> None:
    metadata = MetaData()
    # Timestamps are fixed-width ISO text (32 chars); money and quantities are exact TEXT.
    Table(
        "schema_version",
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("applied_at", String(32), nullable=False),
        Column("description", Text, nullable=False),
    )
    Table(
        "intents",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("symbol", String(20), nullable=False),
        Column("side", String(4), nullable=False),
        Column("status", String(12), nullable=False, index=True),
        Column("strategy", Text, nullable=False),
        Column("source", String(12), nullable=False),
        Column("timeframe", String(8), nullable=False),
        Column("capital", Text, nullable=False),
        Column("risk_percent", Text, nullable=False),
        Column("entry", Text, nullable=False),
        Column("stop", Text, nullable=False),
        Column("stop_method", Text, nullable=False),
        Column("quantity", Text, nullable=False),
        Column("target", Text),
        Column("created_at", String(32), nullable=False),
        Column("updated_at", String(32), nullable=False),
        Column("note", Text),
        Column("confidence", Text),
        Column("validation", Text),
        Column("validated_at", String(32)),
        Column("execution", Text),
        Column("operation_id", String(40)),
        Column("details", Text, nullable=False),
    )
    Table(
        "operations",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("intent_id", String(40), ForeignKey("intents.id"), nullable=False),
        Column("symbol", String(20), nullable=False, index=True),
        Column("side", String(4), nullable=False),
        Column("status", String(12), nullable=False, index=True),
        Column("mode", String(8), nullable=False),
        Column("strategy", Text, nullable=False),
        Column("quantity", Text, nullable=False),
        Column("entry_price", Text, nullable=False),
        Column("entry_fee", Text, nullable=False),
        Column("initial_stop", Text, nullable=False),
        Column("stop", Text, nullable=False),
        Column("target", Text),
        Column("opened_at", String(32), nullable=False),
        Column("updated_at", String(32), nullable=False),
        Column("quote_asset", String(20), nullable=False),
        Column("exit_price", Text),
        Column("exit_fee", Text, nullable=False),
        Column("realized_pnl", Text),
        Column("close_reason", String(32)),
        Column("closed_at", String(32)),
        Index("ix_operations_intent_id", "intent_id", unique=True),  # 1:1 with its intent
    )
    Table(
        "orders",
        metadata,
        Column("client_order_id", String(64), primary_key=True),
        Column("exchange", String(20), nullable=False),
        Column("symbol", String(20), nullable=False),
        Column("side", String(4), nullable=False),
        Column("type", String(20), nullable=False),
        Column("quantity", Text, nullable=False),
        Column("status", String(20), nullable=False),
        Column("created_at", String(32), nullable=False),
        Column("updated_at", String(32), nullable=False),
        Column("price", Text),
        Column("stop_price", Text),
        Column("target_price", Text),
        Column("filled_quantity", Text, nullable=False),
        Column("average_price", Text),
        Column("fee", Text, nullable=False),
        Column("fee_asset", String(20)),
        Column("exchange_order_id", String(64)),
        Column("intent_id", String(40), index=True),
        Column("operation_id", String(40)),
    )
    Table(
        "balances",
        metadata,
        Column("account", String(40), primary_key=True),
        Column("asset", String(20), primary_key=True),
        Column("free", Text, nullable=False),
        Column("locked", Text, nullable=False),
    )
    Table(
        "audit_events",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("at", String(32), nullable=False),
        Column("kind", String(32), nullable=False),
        Column("message", Text, nullable=False),
        Column("intent_id", String(40), index=True),
        Column("operation_id", String(40), index=True),
        Column("data", Text, nullable=False),
        sqlite_autoincrement=True,  # ids never reused, so the trail's order is its id order
    )
    metadata.create_all(connection)


def _v2_signals_checks_and_candles(connection: Connection) -> None:
    # ADD COLUMN of a nullable column is plain SQL on SQLite and PostgreSQL alike.
    connection.execute(text("ALTER TABLE intents ADD COLUMN signal_id TEXT"))
    connection.execute(text("ALTER TABLE operations ADD COLUMN last_checked_at VARCHAR(32)"))
    metadata = MetaData()
    Table(
        "candles",
        metadata,
        Column("symbol", String(20), primary_key=True),
        Column("timeframe", String(8), primary_key=True),
        Column("open_time", BigInteger, primary_key=True, autoincrement=False),
        Column("open", Text, nullable=False),
        Column("high", Text, nullable=False),
        Column("low", Text, nullable=False),
        Column("close", Text, nullable=False),
        Column("volume", Text, nullable=False),
    )
    metadata.create_all(connection)


def _v3_locks(connection: Connection) -> None:
    metadata = MetaData()
    Table(
        "locks",
        metadata,
        Column("name", String(80), primary_key=True),
        Column("owner", String(80), nullable=False),
        Column("host", Text, nullable=False),
        Column("pid", BigInteger, nullable=False),
        Column("acquired_at", String(32), nullable=False),
        Column("expires_at", String(32), nullable=False),
    )
    metadata.create_all(connection)


def _v4_signals(connection: Connection) -> None:
    metadata = MetaData()
    Table(
        "signals",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("strategy", Text, nullable=False),
        Column("pattern", Text, nullable=False),
        Column("symbol", String(20), nullable=False),
        Column("timeframe", String(8), nullable=False),
        Column("candle_open_time", BigInteger, nullable=False),  # epoch ms of the signal candle
        Column("side", String(4), nullable=False),
        Column("confidence", Text, nullable=False),
        Column("status", String(12), nullable=False, index=True),
        Column("detected_at", String(32), nullable=False),
        Column("updated_at", String(32), nullable=False),
        Column("values", Text, nullable=False),  # JSON: indicator name -> exact Decimal text or null
        Column("reason", Text, nullable=False),
        Column("resolution", Text),
        Column("intent_id", String(40)),
        # The idempotency key: a scan inserts with ON CONFLICT DO NOTHING against it.
        Index("ux_signals_key", "strategy", "pattern", "symbol", "timeframe", "candle_open_time", unique=True),
    )
    metadata.create_all(connection)


def _v5_backtests(connection: Connection) -> None:
    metadata = MetaData()
    Table(
        "backtests",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("created_at", String(32), nullable=False, index=True),
        Column("strategy", Text, nullable=False),
        Column("symbols", Text, nullable=False),  # comma-separated
        Column("trades", Integer, nullable=False),
        Column("total_pnl", Text, nullable=False),  # exact decimal text
        Column("document", Text, nullable=False),  # JSON: the whole result, money as text
    )
    metadata.create_all(connection)


def _v6_lock_holder_start(connection: Connection) -> None:
    # The holder's start time tells a live holder from a later process given the same pid.
    connection.execute(text("ALTER TABLE locks ADD COLUMN started TEXT"))


def _v7_leases(connection: Connection) -> None:
    # Locks become leases judged on the database's clock (locks.py): times are epoch milliseconds the
    # database computes, the owner is a random token per lease, host/pid/started/place only describe it.
    # The table is rebuilt (SQLite cannot change a column's type); the name and owner columns stay, so a
    # robson from before v7 that is still running can drop its own row, but cannot take or renew one.
    metadata = MetaData()
    new = Table(
        "locks_v7",
        metadata,
        Column("name", String(80), primary_key=True),
        Column("owner", Text, nullable=False),  # the lease's token
        Column("host", Text, nullable=False),  # shown only
        Column("pid", BigInteger, nullable=False),
        Column("started", Text),  # the holder's start time, and where its pid means something:
        Column("place", Text),  # boot id and PID namespace
        Column("acquired_ms", BigInteger, nullable=False),  # the database's clock, epoch ms
        Column("renewed_ms", BigInteger, nullable=False),
        Column("expires_ms", BigInteger, nullable=False),
    )
    metadata.create_all(connection)
    old = connection.execute(text("SELECT name, owner, host, pid, acquired_at, expires_at, started FROM locks")).all()
    if old:  # a lease as long as the old row's: it was the holder's promise, place unknown (no fast take-over)
        connection.execute(new.insert(), [
            {"name": row.name, "owner": row.owner, "host": row.host, "pid": row.pid, "started": row.started,
             "place": None, "acquired_ms": _epoch_ms(row.acquired_at), "renewed_ms": _epoch_ms(row.acquired_at),
             "expires_ms": _epoch_ms(row.expires_at)} for row in old])
    connection.execute(text("DROP TABLE locks"))
    connection.execute(text("ALTER TABLE locks_v7 RENAME TO locks"))
    if connection.dialect.name == "postgresql":  # its primary key's index would keep the old table's name
        connection.execute(text("ALTER INDEX locks_v7_pkey RENAME TO locks_pkey"))


def _v8_waiting_entries_and_alerts(connection: Connection) -> None:
    # An intent's entry order (NULL: market, as before v8; "limit" or "stop": it waits for its price) and the
    # time its waiting order is cancelled; price alerts, each fired at most once.
    connection.execute(text("ALTER TABLE intents ADD COLUMN entry_order VARCHAR(8)"))
    connection.execute(text("ALTER TABLE intents ADD COLUMN expires_at VARCHAR(32)"))
    metadata = MetaData()
    Table(
        "alerts",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("symbol", String(20), nullable=False),
        Column("direction", String(8), nullable=False),  # "above" / "below"
        Column("price", Text, nullable=False),  # exact decimal text
        Column("note", Text),
        Column("plan_id", String(40)),  # the intent the alert arms (validated when it fires, never executed)
        Column("status", String(12), nullable=False, index=True),  # ACTIVE / FIRED / REMOVED
        Column("created_at", String(32), nullable=False),
        Column("updated_at", String(32), nullable=False),
        Column("checked_ms", BigInteger),  # close time (epoch ms) of the last candle checked
        Column("fired_at", String(32)),
        Column("fired_candle_ms", BigInteger),  # open time of the candle that crossed the price
        Column("fired_price", Text),  # the candle's high (above) or low (below) that reached it
        Column("verdict", Text),  # JSON: the armed plan's validation when the alert fired
    )
    metadata.create_all(connection)


def _v9_partial_exits(connection: Connection) -> None:
    # Scale-out exits: the parts of an operation closed before the rest (each a fill with its own fee), the
    # ladder of targets still walked (JSON, ladder_doc; NULL: one target) and how many of its parts were passed.
    connection.execute(text("ALTER TABLE operations ADD COLUMN ladder TEXT"))
    connection.execute(text("ALTER TABLE operations ADD COLUMN reached INTEGER NOT NULL DEFAULT 0"))
    metadata = MetaData()
    Table(
        "partial_exits",
        metadata,
        Column("operation_id", String(40), primary_key=True, autoincrement=False),
        Column("number", Integer, primary_key=True, autoincrement=False),  # 1, 2 … in the order taken
        Column("target", Integer),  # the ladder part's number; NULL: by hand
        Column("quantity", Text, nullable=False),  # exact decimal text
        Column("price", Text, nullable=False),
        Column("fee", Text, nullable=False),  # in quote
        Column("reason", String(32), nullable=False),
        Column("at", String(32), nullable=False),
        Column("client_order_id", String(64), nullable=False),
    )
    metadata.create_all(connection)


def _epoch_ms(stamp: str) -> int:
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):  # not a time robson wrote: the lease counts as long expired
        return 0
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _v1_initial_tables),
    Migration(2, "intents.signal_id, operations.last_checked_at, candles", _v2_signals_checks_and_candles),
    Migration(3, "locks: one execution per intent, one scan, one monitor", _v3_locks),
    Migration(4, "signals: one per strategy, pattern, symbol, timeframe and candle", _v4_signals),
    Migration(5, "backtests kept with --save", _v5_backtests),
    Migration(6, "locks.started: the holder's start time, so a reused pid is not taken for it", _v6_lock_holder_start),
    Migration(7, "locks are leases on the database's clock, owned by a random token", _v7_leases),
    Migration(8, "intents.entry_order and expires_at (entries that wait for their price), alerts",
              _v8_waiting_entries_and_alerts),
    Migration(9, "partial_exits, operations.ladder and reached (scale-out exits)", _v9_partial_exits),
)
if MIGRATIONS[-1].version != LATEST_VERSION:  # schema.py names the version the code is written for
    raise RuntimeError(f"schema.LATEST_VERSION is {LATEST_VERSION}, the last migration v{MIGRATIONS[-1].version}")

_VERSION = Table(
    "schema_version",
    MetaData(),
    Column("version", Integer, primary_key=True),
    Column("applied_at", String(32)),
    Column("description", Text),
)


def current_version(connection: Connection) -> int:
    """Return the schema version of the database (0 when empty)."""
    if not inspect(connection).has_table("schema_version"):
        return 0
    return int(connection.execute(select(func.max(_VERSION.c.version))).scalar() or 0)


def check_is_robson(connection: Connection, where: str) -> None:
    """Raise ForeignDatabase if the database belongs to another application (robson never adds tables to it)."""
    inspector = inspect(connection)
    names = inspector.get_table_names()
    columns = [c["name"] for c in inspector.get_columns("schema_version")] if "schema_version" in names else []
    problem = foreign_schema(names, columns)
    if problem:
        raise foreign_database(where, problem)


def apply_pending(connection: Connection, *, target: int = LATEST_VERSION) -> list[int]:
    """Apply migrations above the current version up to target inside the caller's transaction."""
    version = current_version(connection)
    check_not_newer(version)
    applied = []
    for migration in MIGRATIONS:
        if version < migration.version <= target:
            migration.apply(connection)
            connection.execute(
                _VERSION.insert().values(
                    version=migration.version,
                    applied_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                    description=migration.description,
                )
            )
            applied.append(migration.version)
    return applied


def upgrade(engine: Engine, *, target: int = LATEST_VERSION, where: str = "the database") -> list[int]:
    """Bring the database to target; return the versions applied (none if another process did it).

    Raise ForeignDatabase, changing nothing, when the database holds another application's tables.
    """
    with engine.connect() as connection:
        check_is_robson(connection, where)
        version = current_version(connection)
    check_not_newer(version)
    if version >= target:
        return []  # the common path: no write lock taken
    with write_connection(engine) as connection, connection.begin():
        # Re-read under the write lock: a concurrent opener may have migrated meanwhile.
        return apply_pending(connection, target=target)
