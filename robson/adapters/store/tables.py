"""Table models of the latest schema (statements are built from these; migrations create them).

Rows hold only text and integers: Decimals as exact TEXT, datetimes as fixed-width ISO-8601
UTC text (sortable), dicts as JSON text. robson.adapters.store.mapping converts them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Table, Text
from sqlmodel import Field, SQLModel


class SchemaVersionRow(SQLModel, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    applied_at: str = Field(sa_type=String(32))
    description: str = Field(sa_type=Text)


class IntentRow(SQLModel, table=True):
    __tablename__ = "intents"

    id: str = Field(primary_key=True, sa_type=String(40))
    symbol: str = Field(sa_type=String(20))
    side: str = Field(sa_type=String(4))
    status: str = Field(sa_type=String(12), index=True)
    strategy: str = Field(sa_type=Text)
    source: str = Field(sa_type=String(12))
    timeframe: str = Field(sa_type=String(8))
    capital: str = Field(sa_type=Text)
    risk_percent: str = Field(sa_type=Text)
    entry: str = Field(sa_type=Text)
    stop: str = Field(sa_type=Text)
    stop_method: str = Field(sa_type=Text)
    quantity: str = Field(sa_type=Text)
    target: str | None = Field(default=None, sa_type=Text)
    created_at: str = Field(sa_type=String(32))
    updated_at: str = Field(sa_type=String(32))
    note: str | None = Field(default=None, sa_type=Text)
    confidence: str | None = Field(default=None, sa_type=Text)
    validation: str | None = Field(default=None, sa_type=Text)
    validated_at: str | None = Field(default=None, sa_type=String(32))
    execution: str | None = Field(default=None, sa_type=Text)
    operation_id: str | None = Field(default=None, sa_type=String(40))
    details: str = Field(sa_type=Text)
    signal_id: str | None = Field(default=None, sa_type=Text)  # since v2
    entry_order: str | None = Field(default=None, sa_type=String(8))  # since v8: None = market, "limit", "stop"
    expires_at: str | None = Field(default=None, sa_type=String(32))  # since v8: a waiting entry's expiry


class OperationRow(SQLModel, table=True):
    __tablename__ = "operations"

    id: str = Field(primary_key=True, sa_type=String(40))
    intent_id: str = Field(sa_type=String(40), foreign_key="intents.id", unique=True, index=True)
    symbol: str = Field(sa_type=String(20), index=True)
    side: str = Field(sa_type=String(4))
    status: str = Field(sa_type=String(12), index=True)
    mode: str = Field(sa_type=String(8))
    strategy: str = Field(sa_type=Text)
    quantity: str = Field(sa_type=Text)
    entry_price: str = Field(sa_type=Text)
    entry_fee: str = Field(sa_type=Text)
    initial_stop: str = Field(sa_type=Text)
    stop: str = Field(sa_type=Text)
    target: str | None = Field(default=None, sa_type=Text)
    opened_at: str = Field(sa_type=String(32))
    updated_at: str = Field(sa_type=String(32))
    quote_asset: str = Field(sa_type=String(20))
    exit_price: str | None = Field(default=None, sa_type=Text)
    exit_fee: str = Field(sa_type=Text)
    realized_pnl: str | None = Field(default=None, sa_type=Text)
    close_reason: str | None = Field(default=None, sa_type=String(32))
    closed_at: str | None = Field(default=None, sa_type=String(32))
    last_checked_at: str | None = Field(default=None, sa_type=String(32))  # since v2
    ladder: str | None = Field(default=None, sa_type=Text)  # since v9: JSON ladder_doc of the targets walked
    reached: int = Field(default=0)  # since v9: the ladder's parts passed


class PartialExitRow(SQLModel, table=True):
    __tablename__ = "partial_exits"  # since v9

    operation_id: str = Field(primary_key=True, sa_type=String(40))
    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    target: int | None = Field(default=None)
    quantity: str = Field(sa_type=Text)
    price: str = Field(sa_type=Text)
    fee: str = Field(sa_type=Text)
    reason: str = Field(sa_type=String(32))
    at: str = Field(sa_type=String(32))
    client_order_id: str = Field(sa_type=String(64))


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"

    client_order_id: str = Field(primary_key=True, sa_type=String(64))
    exchange: str = Field(sa_type=String(20))
    symbol: str = Field(sa_type=String(20))
    side: str = Field(sa_type=String(4))
    type: str = Field(sa_type=String(20))
    quantity: str = Field(sa_type=Text)
    status: str = Field(sa_type=String(20))
    created_at: str = Field(sa_type=String(32))
    updated_at: str = Field(sa_type=String(32))
    price: str | None = Field(default=None, sa_type=Text)
    stop_price: str | None = Field(default=None, sa_type=Text)
    target_price: str | None = Field(default=None, sa_type=Text)
    filled_quantity: str = Field(sa_type=Text)
    average_price: str | None = Field(default=None, sa_type=Text)
    fee: str = Field(sa_type=Text)
    fee_asset: str | None = Field(default=None, sa_type=String(20))
    exchange_order_id: str | None = Field(default=None, sa_type=String(64))
    intent_id: str | None = Field(default=None, sa_type=String(40), index=True)
    operation_id: str | None = Field(default=None, sa_type=String(40))


class BalanceRow(SQLModel, table=True):
    __tablename__ = "balances"

    account: str = Field(primary_key=True, sa_type=String(40))
    asset: str = Field(primary_key=True, sa_type=String(20))
    free: str = Field(sa_type=Text)
    locked: str = Field(sa_type=Text)


class AuditEventRow(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    at: str = Field(sa_type=String(32))
    kind: str = Field(sa_type=String(32))
    message: str = Field(sa_type=Text)
    intent_id: str | None = Field(default=None, sa_type=String(40), index=True)
    operation_id: str | None = Field(default=None, sa_type=String(40), index=True)
    data: str = Field(sa_type=Text)


class CandleRow(SQLModel, table=True):  # since v2
    __tablename__ = "candles"

    symbol: str = Field(primary_key=True, sa_type=String(20))
    timeframe: str = Field(primary_key=True, sa_type=String(8))
    open_time: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    open: str = Field(sa_type=Text)
    high: str = Field(sa_type=Text)
    low: str = Field(sa_type=Text)
    close: str = Field(sa_type=Text)
    volume: str = Field(sa_type=Text)


class LockRow(SQLModel, table=True):  # since v3; leases on the database's clock since v7
    __tablename__ = "locks"

    name: str = Field(primary_key=True, sa_type=String(80))
    owner: str = Field(sa_type=Text)  # the lease's random token
    host: str = Field(sa_type=Text)  # host, pid, started and place describe the holder; they never own the lock
    pid: int = Field(sa_type=BigInteger)
    started: str | None = Field(default=None, sa_type=Text)  # the holder's start time (pid reuse)
    place: str | None = Field(default=None, sa_type=Text)  # boot id and PID namespace: where its pid means something
    acquired_ms: int = Field(sa_type=BigInteger)  # epoch ms on the database's clock
    renewed_ms: int = Field(sa_type=BigInteger)
    expires_ms: int = Field(sa_type=BigInteger)


class SignalRow(SQLModel, table=True):  # since v4
    __tablename__ = "signals"
    # One signal per key, enforced by the database so concurrent scans record it once.
    __table_args__ = (
        Index("ux_signals_key", "strategy", "pattern", "symbol", "timeframe", "candle_open_time", unique=True),
    )

    id: str = Field(primary_key=True, sa_type=String(40))
    strategy: str = Field(sa_type=Text)
    pattern: str = Field(sa_type=Text)
    symbol: str = Field(sa_type=String(20))
    timeframe: str = Field(sa_type=String(8))
    candle_open_time: int = Field(sa_type=BigInteger)
    side: str = Field(sa_type=String(4))
    confidence: str = Field(sa_type=Text)
    status: str = Field(sa_type=String(12), index=True)
    detected_at: str = Field(sa_type=String(32))
    updated_at: str = Field(sa_type=String(32))
    values: str = Field(sa_type=Text)  # read as SIGNALS.c["values"]: ColumnCollection has a values() method
    reason: str = Field(sa_type=Text)
    resolution: str | None = Field(default=None, sa_type=Text)
    intent_id: str | None = Field(default=None, sa_type=String(40))


class BacktestRow(SQLModel, table=True):  # since v5
    __tablename__ = "backtests"

    id: str = Field(primary_key=True, sa_type=String(40))
    created_at: str = Field(sa_type=String(32), index=True)
    strategy: str = Field(sa_type=Text)
    symbols: str = Field(sa_type=Text)
    trades: int
    total_pnl: str = Field(sa_type=Text)
    document: str = Field(sa_type=Text)


class AlertRow(SQLModel, table=True):  # since v8
    __tablename__ = "alerts"

    id: str = Field(primary_key=True, sa_type=String(40))
    symbol: str = Field(sa_type=String(20))
    direction: str = Field(sa_type=String(8))  # "above" / "below"
    price: str = Field(sa_type=Text)
    note: str | None = Field(default=None, sa_type=Text)
    plan_id: str | None = Field(default=None, sa_type=String(40))
    status: str = Field(sa_type=String(12), index=True)  # ACTIVE / FIRED / REMOVED
    created_at: str = Field(sa_type=String(32))
    updated_at: str = Field(sa_type=String(32))
    checked_ms: int | None = Field(default=None, sa_type=BigInteger)  # close time of the last candle checked
    fired_at: str | None = Field(default=None, sa_type=String(32))
    fired_candle_ms: int | None = Field(default=None, sa_type=BigInteger)
    fired_price: str | None = Field(default=None, sa_type=Text)
    verdict: str | None = Field(default=None, sa_type=Text)  # JSON


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


SCHEMA_VERSION = _table(SchemaVersionRow)
INTENTS = _table(IntentRow)
OPERATIONS = _table(OperationRow)
ORDERS = _table(OrderRow)
BALANCES = _table(BalanceRow)
AUDIT_EVENTS = _table(AuditEventRow)
CANDLES = _table(CandleRow)
LOCKS = _table(LockRow)
SIGNALS = _table(SignalRow)
BACKTESTS = _table(BacktestRow)
ALERTS = _table(AlertRow)
PARTIAL_EXITS = _table(PartialExitRow)

ALL_TABLES: tuple[Table, ...] = (SCHEMA_VERSION, INTENTS, OPERATIONS, ORDERS, BALANCES, AUDIT_EVENTS, CANDLES, LOCKS, SIGNALS,
                                 BACKTESTS, ALERTS, PARTIAL_EXITS)
