"""SqlSession: the StoreSession protocol over one SQLAlchemy connection in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from functools import cache

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, tuple_, update

from robson.adapters.store import mapping
from robson.adapters.store.tables import (
    AUDIT_EVENTS,
    BACKTESTS,
    BALANCES,
    CANDLES,
    INTENTS,
    OPERATIONS,
    ORDERS,
    SIGNALS,
)
from robson.application.ports import Balance
from robson.domain.backtest_stats import SavedBacktest
from robson.domain.ids import BACKTEST_PREFIX, INTENT_PREFIX, OPERATION_PREFIX, normalize_prefix
from robson.domain.intent import IntentStatus, TradingIntent
from robson.domain.market import Candle
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.orders import AuditEvent, Order
from robson.domain.signals import SIGNAL_PREFIX, Signal, SignalStatus
from robson.errors import AmbiguousId, DuplicateOrder, IllegalTransition, InvalidInput, NotFound, StoreError

_ZERO = Decimal("0")
_SIGNAL_KEY = ("strategy", "pattern", "symbol", "timeframe", "candle_open_time")
# Hot statements are built once with bound parameters, so SQLAlchemy reuses their compiled form
# instead of building and hashing a new statement from every value (a monitor tick runs thousands).
# Built on first use, not at import: a command that never reads an order does not pay for it.


@cache
def _statement(name: str):
    key = bindparam("key_")
    return {
        "get_operation": lambda: select(OPERATIONS).where(OPERATIONS.c.id == key),
        "get_order": lambda: select(ORDERS).where(ORDERS.c.client_order_id == key),
        "update_order": lambda: update(ORDERS).where(ORDERS.c.client_order_id == key),
        "get_balances": lambda: select(BALANCES).where(BALANCES.c.account == key).order_by(BALANCES.c.asset),
    }[name]()


@cache
def _insert_statement(table: Table):
    return insert(table)


@cache
def _upsert_statement(table: Table, keys: tuple[str, ...], dialect: str):
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    statement = dialect_insert(table)
    changes = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)


@cache
def _compare_and_set_statement(table: Table):
    return update(table).where(table.c.id == bindparam("key_"), table.c.status == bindparam("expected_"))


@mapping.reads("operations", "id")
def _realized_pnl(row: Any) -> Decimal:
    return mapping.decode_decimal(row.realized_pnl)


class SqlSession:
    """One unit of work: reads see one snapshot; writes commit together when the block ends."""

    def __init__(self, connection: Connection, *, writable: bool) -> None:
        self._connection = connection
        self._writable = writable

    # --- intents -------------------------------------------------------------------

    def add_intent(self, intent: TradingIntent) -> None:
        """Insert a new intent; raise StoreError if its ID exists."""
        self._insert(INTENTS, mapping.intent_to_row(intent))

    def update_intent(self, intent: TradingIntent, *, expected_status: IntentStatus) -> None:
        """Write intent if its stored status is still expected_status; raise IllegalTransition or NotFound."""
        self._compare_and_set(INTENTS, "intent", mapping.intent_to_row(intent), expected_status.value)

    def get_intent(self, intent_id: str) -> TradingIntent:
        """Return the intent by full ID; raise NotFound."""
        row = self._connection.execute(select(INTENTS).where(INTENTS.c.id == intent_id)).first()
        if row is None:
            raise NotFound(f"intent {intent_id} not found")
        return mapping.intent_from_row(row)

    def resolve_intent_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'pl-' optional); raise NotFound or AmbiguousId."""
        return self._resolve(INTENTS, "intent", text, INTENT_PREFIX)

    def list_intents(self, status: IntentStatus | None = None) -> list[TradingIntent]:
        """Return intents oldest first (created at the same market time: in the order they were planned)."""
        # An intent's first audit event (planned) has the lowest autoincrement id: the creation order,
        # which random IDs do not give when a replayed clock stands still.
        planned = (select(func.min(AUDIT_EVENTS.c.id)).where(AUDIT_EVENTS.c.intent_id == INTENTS.c.id)
                   .scalar_subquery())
        query = select(INTENTS).order_by(INTENTS.c.created_at, planned, INTENTS.c.id)
        if status is not None:
            query = query.where(INTENTS.c.status == status.value)
        return [mapping.intent_from_row(row) for row in self._connection.execute(query)]

    # --- operations ----------------------------------------------------------------

    def add_operation(self, operation: Operation) -> None:
        """Insert a new operation; raise StoreError if its ID exists or its intent does not."""
        self._insert(OPERATIONS, mapping.operation_to_row(operation))

    def update_operation(self, operation: Operation, *, expected_status: OperationStatus) -> None:
        """Write operation if its stored status is still expected_status; raise IllegalTransition or NotFound."""
        self._compare_and_set(OPERATIONS, "operation", mapping.operation_to_row(operation), expected_status.value)

    def get_operation(self, operation_id: str) -> Operation:
        """Return the operation by full ID; raise NotFound."""
        row = self._connection.execute(_statement("get_operation"), {"key_": operation_id}).first()
        if row is None:
            raise NotFound(f"operation {operation_id} not found")
        return mapping.operation_from_row(row)

    def resolve_operation_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'op-' optional); raise NotFound or AmbiguousId."""
        return self._resolve(OPERATIONS, "operation", text, OPERATION_PREFIX)

    def list_operations(self, status: OperationStatus | None = None) -> list[Operation]:
        """Return operations oldest first, optionally only those in status."""
        query = select(OPERATIONS).order_by(OPERATIONS.c.opened_at, OPERATIONS.c.id)
        if status is not None:
            query = query.where(OPERATIONS.c.status == status.value)
        return [mapping.operation_from_row(row) for row in self._connection.execute(query)]

    def operation_for_intent(self, intent_id: str) -> Operation | None:
        """Return the operation opened by intent_id, if any."""
        row = self._connection.execute(select(OPERATIONS).where(OPERATIONS.c.intent_id == intent_id)).first()
        return None if row is None else mapping.operation_from_row(row)

    def realized_pnl_between(self, start: datetime, end: datetime) -> Decimal:
        """Return the exact sum of realized P&L of operations CLOSED in [start, end)."""
        query = select(OPERATIONS.c.id, OPERATIONS.c.realized_pnl).where(
            OPERATIONS.c.status == OperationStatus.CLOSED.value,
            OPERATIONS.c.closed_at >= mapping.encode_datetime(start),
            OPERATIONS.c.closed_at < mapping.encode_datetime(end),
            OPERATIONS.c.realized_pnl.is_not(None),
        )
        # Summed in Python: SQL SUM over TEXT would go through floating point.
        return sum((_realized_pnl(row) for row in self._connection.execute(query)), _ZERO)

    def last_stop_out(self, symbol: str, at_or_before: datetime | None = None) -> datetime | None:
        """Return when an operation on symbol last closed at its stop (at or before a market time), if ever."""
        query = select(func.max(OPERATIONS.c.closed_at)).where(
            OPERATIONS.c.symbol == symbol,
            OPERATIONS.c.status == OperationStatus.CLOSED.value,
            OPERATIONS.c.close_reason == CloseReason.STOP.value,
        )
        if at_or_before is not None:
            query = query.where(OPERATIONS.c.closed_at <= mapping.encode_datetime(at_or_before))
        return mapping.decode_optional_datetime(self._connection.execute(query).scalar())

    # --- orders and balances ---------------------------------------------------------

    def add_order(self, order: Order) -> None:
        """Insert an order; raise DuplicateOrder if its client id already exists."""
        self._require_writable()
        # Checked first (not by catching the IntegrityError), which would abort a PostgreSQL transaction.
        if self.get_order(order.client_order_id) is not None:
            raise DuplicateOrder(f"order {order.client_order_id} exists already")
        self._insert(ORDERS, mapping.order_to_row(order))

    def update_order(self, order: Order) -> None:
        """Overwrite a stored order; raise NotFound if its client id is unknown."""
        self._require_writable()
        values = mapping.order_to_row(order)
        key = values.pop("client_order_id")
        result = self._connection.execute(_statement("update_order"), {**values, "key_": key})
        if result.rowcount == 0:
            raise NotFound(f"order {key} not found")

    def get_order(self, client_order_id: str) -> Order | None:
        """Return the order with this client id, or None."""
        row = self._connection.execute(_statement("get_order"), {"key_": client_order_id}).first()
        return None if row is None else mapping.order_from_row(row)

    def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, Order]:
        """Return the stored orders among these client ids, by client id (one query per 500 ids)."""
        found: dict[str, Order] = {}
        for start in range(0, len(client_order_ids), 500):
            query = select(ORDERS).where(ORDERS.c.client_order_id.in_(client_order_ids[start:start + 500]))
            found.update((o.client_order_id, o) for o in map(mapping.order_from_row, self._connection.execute(query)))
        return found

    def orders_for_intent(self, intent_id: str) -> list[Order]:
        """Return the intent's orders oldest first."""
        query = (
            select(ORDERS)
            .where(ORDERS.c.intent_id == intent_id)
            .order_by(ORDERS.c.created_at, ORDERS.c.client_order_id)
        )
        return [mapping.order_from_row(row) for row in self._connection.execute(query)]

    def get_balances(self, account: str) -> dict[str, Balance]:
        """Return the account's balances by asset (empty for an unknown account)."""
        rows = self._connection.execute(_statement("get_balances"), {"key_": account})
        return {row.asset: mapping.balance_from_row(row) for row in rows}

    def set_balance(self, account: str, balance: Balance) -> None:
        """Insert or replace the account's balance of balance.asset."""
        self._require_writable()
        self._upsert(BALANCES, [mapping.balance_to_row(account, balance)], ("account", "asset"))

    # --- audit trail -----------------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Append an event to the audit trail."""
        self._insert(AUDIT_EVENTS, mapping.audit_event_to_row(event))

    def audit_trail(self, *, intent_id: str | None = None, operation_id: str | None = None) -> list[AuditEvent]:
        """Return events in the order they happened: all, or those of the intent OR the operation given."""
        query = select(AUDIT_EVENTS).order_by(AUDIT_EVENTS.c.at, AUDIT_EVENTS.c.id)
        wanted = []
        if intent_id is not None:
            wanted.append(AUDIT_EVENTS.c.intent_id == intent_id)
        if operation_id is not None:
            wanted.append(AUDIT_EVENTS.c.operation_id == operation_id)
        if wanted:
            query = query.where(or_(*wanted))
        return [mapping.audit_event_from_row(row) for row in self._connection.execute(query)]

    # --- imported market data ----------------------------------------------------------

    def save_candles(self, symbol: str, timeframe: str, candles: Sequence[Candle]) -> int:
        """Insert or replace candles by open time; return how many distinct candles were written."""
        self._require_writable()
        # Last one wins within a batch too; PostgreSQL refuses one statement touching a row twice.
        rows = {candle.open_time: mapping.candle_to_row(symbol, timeframe, candle) for candle in candles}
        if rows:
            self._upsert(CANDLES, list(rows.values()), ("symbol", "timeframe", "open_time"))
        return len(rows)

    def load_candles(
        self, symbol: str, timeframe: str, *, end_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Return stored candles with open_time < end_ms, the last `limit` of them, oldest first."""
        if limit is not None and limit <= 0:
            return []
        query = (
            select(CANDLES)
            .where(CANDLES.c.symbol == symbol, CANDLES.c.timeframe == timeframe)
            .order_by(CANDLES.c.open_time.desc())
        )
        if end_ms is not None:
            query = query.where(CANDLES.c.open_time < end_ms)
        if limit is not None:
            query = query.limit(limit)
        rows = self._connection.execute(query).all()
        return [mapping.candle_from_row(row) for row in reversed(rows)]

    def candle_series(self) -> list[tuple[str, str, int]]:
        """Return (symbol, timeframe, count) for every imported series, by symbol then timeframe."""
        query = (
            select(CANDLES.c.symbol, CANDLES.c.timeframe, func.count())
            .group_by(CANDLES.c.symbol, CANDLES.c.timeframe)
            .order_by(CANDLES.c.symbol, CANDLES.c.timeframe)
        )
        return [(symbol, timeframe, int(count)) for symbol, timeframe, count in self._connection.execute(query)]

    # --- saved backtests ---------------------------------------------------------------

    def add_backtest(self, saved: SavedBacktest) -> None:
        """Keep a backtest result."""
        self._require_writable()
        self._insert(BACKTESTS, mapping.backtest_to_row(saved))

    def get_backtest(self, backtest_id: str) -> SavedBacktest:
        """Return the saved backtest by full ID; raise NotFound."""
        row = self._connection.execute(select(BACKTESTS).where(BACKTESTS.c.id == backtest_id)).first()
        if row is None:
            raise NotFound(f"backtest {backtest_id} not found")
        return mapping.backtest_from_row(row)

    def resolve_backtest_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'bt-' optional); raise NotFound or AmbiguousId."""
        return self._resolve(BACKTESTS, "backtest", text, BACKTEST_PREFIX)

    def list_backtests(self) -> list[SavedBacktest]:
        """Return the saved backtests, newest first."""
        query = select(BACKTESTS).order_by(BACKTESTS.c.created_at.desc(), BACKTESTS.c.id)
        return [mapping.backtest_from_row(row) for row in self._connection.execute(query)]

    # --- scan signals ------------------------------------------------------------------

    def add_signal(self, signal: Signal) -> bool:
        """Insert a signal; return False, changing nothing, if one with its key exists (concurrency-safe)."""
        self._require_writable()
        row = mapping.signal_to_row(signal)
        dialect = self._connection.dialect.name
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            else:
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            # The unique key decides inside the database: two scans racing record the signal once.
            statement = dialect_insert(SIGNALS).values(**row).on_conflict_do_nothing(index_elements=list(_SIGNAL_KEY))
            return bool(self._connection.execute(statement).rowcount == 1)
        # Any other database: writes are serialized by the write transaction, so check then insert.
        key = [SIGNALS.c[name] == row[name] for name in _SIGNAL_KEY]
        if self._connection.execute(select(SIGNALS.c.id).where(*key)).first() is not None:
            return False
        self._insert(SIGNALS, row)
        return True

    def update_signal(self, signal: Signal, *, expected_status: SignalStatus) -> None:
        """Write signal if its stored status is still expected_status; raise IllegalTransition or NotFound."""
        self._compare_and_set(SIGNALS, "signal", mapping.signal_to_row(signal), expected_status.value)

    def get_signal(self, signal_id: str) -> Signal:
        """Return the signal by full ID; raise NotFound."""
        row = self._connection.execute(select(SIGNALS).where(SIGNALS.c.id == signal_id)).first()
        if row is None:
            raise NotFound(f"signal {signal_id} not found")
        return mapping.signal_from_row(row)

    def resolve_signal_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'sg-' optional); raise NotFound or AmbiguousId."""
        return self._resolve(SIGNALS, "signal", text, SIGNAL_PREFIX)

    def list_signals(
        self, status: SignalStatus | None = None, strategy: str | None = None, symbol: str | None = None
    ) -> list[Signal]:
        """Return signals by candle time then ID, optionally only those matching every filter given."""
        query = select(SIGNALS).order_by(SIGNALS.c.candle_open_time, SIGNALS.c.id)
        if status is not None:
            query = query.where(SIGNALS.c.status == status.value)
        if strategy is not None:
            query = query.where(SIGNALS.c.strategy == strategy)
        if symbol is not None:
            query = query.where(SIGNALS.c.symbol == symbol.upper())
        return [mapping.signal_from_row(row) for row in self._connection.execute(query)]

    # --- helpers ---------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The underlying connection, for store-internal modules (locks)."""
        return self._connection

    def _require_writable(self) -> None:
        if not self._writable:
            raise StoreError("cannot write in a read session; use store.transaction()")

    def _insert(self, table: Table, values: dict[str, Any]) -> None:
        self._require_writable()
        self._connection.execute(_insert_statement(table), values)

    def _compare_and_set(self, table: Table, noun: str, values: dict[str, Any], expected: str) -> None:
        self._require_writable()
        key = values.pop("id")
        # One UPDATE guarded by the status is atomic on any database, not only under BEGIN IMMEDIATE.
        statement = _compare_and_set_statement(table)
        if self._connection.execute(statement, {**values, "key_": key, "expected_": expected}).rowcount == 1:
            return
        stored = self._connection.execute(select(table.c.status).where(table.c.id == key)).scalar()
        if stored is None:
            raise NotFound(f"{noun} {key} not found")
        raise IllegalTransition(f"{noun} {key} is {stored}, expected {expected}")

    def _resolve(self, table: Table, noun: str, text: str, type_prefix: str) -> str:
        if not text.strip():
            article = "an" if noun[0] in "aeiou" else "a"
            raise InvalidInput(f"{article} {noun} ID is required")
        prefix = normalize_prefix(text, type_prefix)  # 'pl-' alone is a prefix of every intent ID
        if len(prefix) > table.c.id.type.length:  # longer than any ID: no match, and no query SQLite refuses
            raise NotFound(f"no {noun} matches '{prefix[:40]}…' ({len(prefix):,} characters; IDs are short)")
        query = select(table.c.id).where(table.c.id.startswith(prefix, autoescape=True)).order_by(table.c.id)
        matches = list(self._connection.execute(query).scalars())
        if prefix in matches:
            return prefix
        if not matches:
            raise NotFound(f"no {noun} matches '{prefix}'")
        if len(matches) > 1:
            raise AmbiguousId(prefix, matches)
        return matches[0]

    def _upsert(self, table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
        dialect = self._connection.dialect.name
        if dialect in ("sqlite", "postgresql"):
            self._connection.execute(_upsert_statement(table, keys, dialect), rows)
            return
        # Any other database: delete then insert, inside the same transaction.
        key_columns = [table.c[name] for name in keys]
        key_values = [tuple(row[name] for name in keys) for row in rows]
        self._connection.execute(delete(table).where(tuple_(*key_columns).in_(key_values)))
        self._connection.execute(insert(table), rows)
