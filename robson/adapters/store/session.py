"""SqlSession: the StoreSession protocol as SQL over one connection in one transaction.

The statements are plain SQL text with :named parameters that SQLite (3.35 or newer) and
PostgreSQL both run unchanged; robson.adapters.store.database runs them. Identifiers are quoted
(signals has a column named "values"). Decimals are TEXT, so sums are done in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from robson.adapters.store import mapping
from robson.adapters.store.database import Connection
from robson.adapters.store.schema import ID_LENGTH, check_lengths
from robson.application.ports import Balance
from robson.domain.ids import ALERT_PREFIX, BACKTEST_PREFIX, INTENT_PREFIX, OPERATION_PREFIX, normalize_prefix
from robson.domain.intent import IntentStatus, TradingIntent
from robson.domain.market import Candle
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.orders import AuditEvent, Order
from robson.domain.signals import SIGNAL_PREFIX, Signal, SignalStatus
from robson.errors import AmbiguousId, DuplicateOrder, IllegalTransition, InvalidInput, NotFound, StoreError

if TYPE_CHECKING:  # only their commands load them
    from robson.domain.alerts import Alert, AlertStatus
    from robson.domain.backtest_stats import SavedBacktest

_ZERO = Decimal("0")
_SIGNAL_KEY = ("strategy", "pattern", "symbol", "timeframe", "candle_open_time")
_IN_BATCH = 500  # ids per IN (...) list


def _names(columns: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in columns)


@cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({_names(columns)}) VALUES ({', '.join(f':{name}' for name in columns)})"


@cache
def _upsert_sql(table: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    changes = ", ".join(f'"{name}" = excluded."{name}"' for name in columns if name not in keys)
    return f"{_insert_sql(table, columns)} ON CONFLICT ({_names(keys)}) DO UPDATE SET {changes}"


@cache
def _update_sql(table: str, columns: tuple[str, ...], key: str, guard: str | None = None) -> str:
    """UPDATE table SET every column WHERE key = :key_ [AND guard = :expected_]."""
    changes = ", ".join(f'"{name}" = :{name}' for name in columns)
    where = f'"{key}" = :key_' + (f' AND "{guard}" = :expected_' if guard else "")
    return f"UPDATE {table} SET {changes} WHERE {where}"


def _in_list(column: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """Return 'column IN (:in_0, ...)' and its parameters."""
    params = {f"in_{index}": value for index, value in enumerate(values)}
    return f'"{column}" IN ({", ".join(f":{name}" for name in params)})', params


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
        self._insert("intents", mapping.intent_to_row(intent))

    def update_intent(self, intent: TradingIntent, *, expected_status: IntentStatus) -> None:
        """Write intent if its stored status is still expected_status; raise IllegalTransition or NotFound."""
        self._compare_and_set("intents", "intent", mapping.intent_to_row(intent), expected_status.value)

    def get_intent(self, intent_id: str) -> TradingIntent:
        """Return the intent by full ID; raise NotFound."""
        row = self._connection.execute("SELECT * FROM intents WHERE id = :id", {"id": intent_id}).first()
        if row is None:
            raise NotFound(f"intent {intent_id} not found")
        return mapping.intent_from_row(row)

    def resolve_intent_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'pl-' optional); raise NotFound or AmbiguousId."""
        return self._resolve("intents", "intent", text, INTENT_PREFIX)

    def list_intents(self, status: IntentStatus | None = None) -> list[TradingIntent]:
        """Return intents oldest first (created at the same market time: in the order they were planned)."""
        # An intent's first audit event (planned) has the lowest autoincrement id: the creation order,
        # which random IDs do not give when a replayed clock stands still.
        where = "" if status is None else "WHERE status = :status"
        query = (f"SELECT * FROM intents {where} ORDER BY created_at, "
                 "(SELECT min(a.id) FROM audit_events a WHERE a.intent_id = intents.id), id")
        params = {} if status is None else {"status": status.value}
        return [mapping.intent_from_row(row) for row in self._connection.execute(query, params)]

    # --- operations ----------------------------------------------------------------

    def add_operation(self, operation: Operation) -> None:
        """Insert a new operation (with its parts taken, if any); raise StoreError if its ID exists or its intent does not."""
        self._insert("operations", mapping.operation_to_row(operation))
        self._add_parts(operation, 0)

    def update_operation(self, operation: Operation, *, expected_status: OperationStatus) -> None:
        """Write operation (and the parts it took since it was stored) if its stored status is still
        expected_status; raise IllegalTransition or NotFound; parts are never rewritten, only added."""
        self._compare_and_set("operations", "operation", mapping.operation_to_row(operation), expected_status.value)
        stored = self._connection.execute("SELECT max(number) FROM partial_exits WHERE operation_id = :id",
                                          {"id": operation.id}).scalar()
        self._add_parts(operation, stored or 0)

    def _add_parts(self, operation: Operation, after: int) -> None:
        for part in operation.parts:
            if part.number > after:
                self._insert("partial_exits", mapping.partial_exit_to_row(operation.id, part))

    def _parts_of(self, where: str, params: dict[str, Any]) -> dict[str, list[Any]]:
        """The partial exits of the operations selected by where (a condition on operations), by operation id."""
        rows = self._connection.execute(
            f"SELECT * FROM partial_exits WHERE operation_id IN (SELECT id FROM operations {where}) "
            "ORDER BY operation_id, number", params)
        found: dict[str, list[Any]] = {}
        for row in rows:
            found.setdefault(row.operation_id, []).append(mapping.partial_exit_from_row(row))
        return found

    def _operations(self, rows: list[Any], where: str, params: dict[str, Any]) -> list[Operation]:
        parts = self._parts_of(where, params) if rows else {}
        return [mapping.operation_from_row(row, tuple(parts.get(row.id, ()))) for row in rows]

    def get_operation(self, operation_id: str) -> Operation:
        """Return the operation by full ID, with its parts taken; raise NotFound."""
        row = self._connection.execute("SELECT * FROM operations WHERE id = :id", {"id": operation_id}).first()
        if row is None:
            raise NotFound(f"operation {operation_id} not found")
        return self._operations([row], "WHERE id = :id", {"id": operation_id})[0]

    def resolve_operation_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'op-' optional); raise NotFound or AmbiguousId."""
        return self._resolve("operations", "operation", text, OPERATION_PREFIX)

    def list_operations(self, status: OperationStatus | None = None) -> list[Operation]:
        """Return operations oldest first, optionally only those in status."""
        where = "" if status is None else "WHERE status = :status"
        params = {} if status is None else {"status": status.value}
        rows = self._connection.execute(f"SELECT * FROM operations {where} ORDER BY opened_at, id", params).all()
        return self._operations(rows, where, params)

    def operation_for_intent(self, intent_id: str) -> Operation | None:
        """Return the operation opened by intent_id, if any."""
        row = self._connection.execute("SELECT * FROM operations WHERE intent_id = :id", {"id": intent_id}).first()
        return None if row is None else self._operations([row], "WHERE id = :key", {"key": row.id})[0]

    def realized_pnl_between(self, start: datetime, end: datetime) -> Decimal:
        """Return the exact sum of realized P&L of operations CLOSED in [start, end)."""
        rows = self._connection.execute(
            "SELECT id, realized_pnl FROM operations WHERE status = :status AND closed_at >= :start "
            "AND closed_at < :end AND realized_pnl IS NOT NULL",
            {"status": OperationStatus.CLOSED.value, "start": mapping.encode_datetime(start),
             "end": mapping.encode_datetime(end)})
        # Summed in Python: SQL SUM over TEXT would go through floating point.
        return sum((_realized_pnl(row) for row in rows), _ZERO)

    def last_stop_out(self, symbol: str, at_or_before: datetime | None = None) -> datetime | None:
        """Return when an operation on symbol last closed at its stop (at or before a market time), if ever."""
        query = "SELECT max(closed_at) FROM operations WHERE symbol = :symbol AND status = :status AND close_reason = :reason"
        params = {"symbol": symbol, "status": OperationStatus.CLOSED.value, "reason": CloseReason.STOP.value}
        if at_or_before is not None:
            query += " AND closed_at <= :until"
            params["until"] = mapping.encode_datetime(at_or_before)
        return mapping.decode_optional_datetime(self._connection.execute(query, params).scalar())

    # --- orders and balances ---------------------------------------------------------

    def add_order(self, order: Order) -> None:
        """Insert an order; raise DuplicateOrder if its client id already exists."""
        self._require_writable()
        # Checked first (not by catching the IntegrityError), which would abort a PostgreSQL transaction.
        if self.get_order(order.client_order_id) is not None:
            raise DuplicateOrder(f"order {order.client_order_id} exists already")
        self._insert("orders", mapping.order_to_row(order))

    def update_order(self, order: Order) -> None:
        """Overwrite a stored order; raise NotFound if its client id is unknown."""
        self._require_writable()
        values = mapping.order_to_row(order)
        check_lengths("orders", values)
        key = values.pop("client_order_id")
        result = self._connection.execute(_update_sql("orders", tuple(values), "client_order_id"), {**values, "key_": key})
        if result.rowcount == 0:
            raise NotFound(f"order {key} not found")

    def get_order(self, client_order_id: str) -> Order | None:
        """Return the order with this client id, or None."""
        row = self._connection.execute("SELECT * FROM orders WHERE client_order_id = :id", {"id": client_order_id}).first()
        return None if row is None else mapping.order_from_row(row)

    def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, Order]:
        """Return the stored orders among these client ids, by client id (one query per 500 ids)."""
        found: dict[str, Order] = {}
        for start in range(0, len(client_order_ids), _IN_BATCH):
            wanted, params = _in_list("client_order_id", client_order_ids[start:start + _IN_BATCH])
            rows = self._connection.execute(f"SELECT * FROM orders WHERE {wanted}", params)
            found.update((o.client_order_id, o) for o in map(mapping.order_from_row, rows))
        return found

    def orders_for_intent(self, intent_id: str) -> list[Order]:
        """Return the intent's orders oldest first."""
        rows = self._connection.execute(
            "SELECT * FROM orders WHERE intent_id = :id ORDER BY created_at, client_order_id", {"id": intent_id})
        return [mapping.order_from_row(row) for row in rows]

    def get_balances(self, account: str) -> dict[str, Balance]:
        """Return the account's balances by asset (empty for an unknown account)."""
        rows = self._connection.execute("SELECT * FROM balances WHERE account = :account ORDER BY asset",
                                        {"account": account})
        return {row.asset: mapping.balance_from_row(row) for row in rows}

    def set_balance(self, account: str, balance: Balance) -> None:
        """Insert or replace the account's balance of balance.asset."""
        self._require_writable()
        self._upsert("balances", [mapping.balance_to_row(account, balance)], ("account", "asset"))

    # --- audit trail -----------------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Append an event to the audit trail."""
        self._insert("audit_events", mapping.audit_event_to_row(event))

    def audit_trail(self, *, intent_id: str | None = None, operation_id: str | None = None) -> list[AuditEvent]:
        """Return events in the order they happened: all, or those of the intent OR the operation given."""
        params = {name: value for name, value in (("intent_id", intent_id), ("operation_id", operation_id))
                  if value is not None}
        where = f"WHERE {' OR '.join(f'{name} = :{name}' for name in params)}" if params else ""
        rows = self._connection.execute(f'SELECT * FROM audit_events {where} ORDER BY "at", id', params)
        return [mapping.audit_event_from_row(row) for row in rows]

    # --- imported market data ----------------------------------------------------------

    def save_candles(self, symbol: str, timeframe: str, candles: Sequence[Candle]) -> int:
        """Insert or replace candles by open time; return how many distinct candles were written."""
        self._require_writable()
        # Last one wins within a batch too; PostgreSQL refuses one statement touching a row twice.
        rows = {candle.open_time: mapping.candle_to_row(symbol, timeframe, candle) for candle in candles}
        if rows:
            self._upsert("candles", list(rows.values()), ("symbol", "timeframe", "open_time"))
        return len(rows)

    def load_candles(
        self, symbol: str, timeframe: str, *, end_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Return stored candles with open_time < end_ms, the last `limit` of them, oldest first."""
        if limit is not None and limit <= 0:
            return []
        query = "SELECT * FROM candles WHERE symbol = :symbol AND timeframe = :timeframe"
        params: dict[str, Any] = {"symbol": symbol, "timeframe": timeframe}
        if end_ms is not None:
            query += " AND open_time < :end_ms"
            params["end_ms"] = end_ms
        query += " ORDER BY open_time DESC"
        if limit is not None:
            query += " LIMIT :limit"
            params["limit"] = limit
        rows = self._connection.execute(query, params).all()
        return [mapping.candle_from_row(row) for row in reversed(rows)]

    def candle_series(self) -> list[tuple[str, str, int]]:
        """Return (symbol, timeframe, count) for every imported series, by symbol then timeframe."""
        rows = self._connection.execute("SELECT symbol, timeframe, count(*) FROM candles GROUP BY symbol, timeframe "
                                        "ORDER BY symbol, timeframe")
        return [(symbol, timeframe, int(count)) for symbol, timeframe, count in rows]

    # --- saved backtests ---------------------------------------------------------------

    def add_backtest(self, saved: SavedBacktest) -> None:
        """Keep a backtest result."""
        self._require_writable()
        self._insert("backtests", mapping.backtest_to_row(saved))

    def get_backtest(self, backtest_id: str) -> SavedBacktest:
        """Return the saved backtest by full ID; raise NotFound."""
        row = self._connection.execute("SELECT * FROM backtests WHERE id = :id", {"id": backtest_id}).first()
        if row is None:
            raise NotFound(f"backtest {backtest_id} not found")
        return mapping.backtest_from_row(row)

    def resolve_backtest_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'bt-' optional); raise NotFound or AmbiguousId."""
        return self._resolve("backtests", "backtest", text, BACKTEST_PREFIX)

    def list_backtests(self) -> list[SavedBacktest]:
        """Return the saved backtests, newest first."""
        rows = self._connection.execute("SELECT * FROM backtests ORDER BY created_at DESC, id")
        return [mapping.backtest_from_row(row) for row in rows]

    # --- scan signals ------------------------------------------------------------------

    def add_signal(self, signal: Signal) -> bool:
        """Insert a signal; return False, changing nothing, if one with its key exists (concurrency-safe)."""
        self._require_writable()
        row = mapping.signal_to_row(signal)
        check_lengths("signals", row)
        # The unique key decides inside the database: two scans racing record the signal once. RETURNING
        # tells whether the row went in (an INSERT's rowcount is not reported by every driver).
        statement = f"{_insert_sql('signals', tuple(row))} ON CONFLICT ({_names(_SIGNAL_KEY)}) DO NOTHING RETURNING id"
        return self._connection.execute(statement, row).first() is not None

    def update_signal(self, signal: Signal, *, expected_status: SignalStatus) -> None:
        """Write signal if its stored status is still expected_status; raise IllegalTransition or NotFound."""
        self._compare_and_set("signals", "signal", mapping.signal_to_row(signal), expected_status.value)

    def get_signal(self, signal_id: str) -> Signal:
        """Return the signal by full ID; raise NotFound."""
        row = self._connection.execute("SELECT * FROM signals WHERE id = :id", {"id": signal_id}).first()
        if row is None:
            raise NotFound(f"signal {signal_id} not found")
        return mapping.signal_from_row(row)

    def resolve_signal_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'sg-' optional); raise NotFound or AmbiguousId."""
        return self._resolve("signals", "signal", text, SIGNAL_PREFIX)

    def list_signals(
        self, status: SignalStatus | None = None, strategy: str | None = None, symbol: str | None = None
    ) -> list[Signal]:
        """Return signals by candle time then ID, optionally only those matching every filter given."""
        params = {name: value for name, value in (
            ("status", None if status is None else status.value), ("strategy", strategy),
            ("symbol", None if symbol is None else symbol.upper())) if value is not None}
        where = f"WHERE {' AND '.join(f'{name} = :{name}' for name in params)}" if params else ""
        rows = self._connection.execute(f"SELECT * FROM signals {where} ORDER BY candle_open_time, id", params)
        return [mapping.signal_from_row(row) for row in rows]

    # --- price alerts ------------------------------------------------------------------

    def add_alert(self, alert: Alert) -> None:
        """Insert a new alert; raise StoreError if its ID exists."""
        self._insert("alerts", mapping.alert_to_row(alert))

    def update_alert(self, alert: Alert, *, expected_status: AlertStatus) -> None:
        """Write alert if its stored status is still expected_status; raise IllegalTransition or NotFound.

        ACTIVE → FIRED through here is how an alert fires exactly once: of two checks racing, one
        UPDATE matches and the other raises IllegalTransition.
        """
        self._compare_and_set("alerts", "alert", mapping.alert_to_row(alert), expected_status.value)

    def mark_alert_checked(self, alert_id: str, checked_ms: int, at: datetime) -> bool:
        """Move an ACTIVE alert's last check forward to checked_ms; return whether it moved (never backwards)."""
        self._require_writable()
        result = self._connection.execute(
            'UPDATE alerts SET checked_ms = :checked_ms, updated_at = :at WHERE id = :id AND status = :status '
            'AND (checked_ms IS NULL OR checked_ms < :checked_ms)',
            {"checked_ms": checked_ms, "at": mapping.encode_datetime(at), "id": alert_id,
             "status": "ACTIVE"})  # AlertStatus.ACTIVE
        return result.rowcount == 1

    def get_alert(self, alert_id: str) -> Alert:
        """Return the alert by full ID; raise NotFound."""
        row = self._connection.execute("SELECT * FROM alerts WHERE id = :id", {"id": alert_id}).first()
        if row is None:
            raise NotFound(f"alert {alert_id} not found")
        return mapping.alert_from_row(row)

    def resolve_alert_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix (any case, 'al-' optional); raise NotFound or AmbiguousId."""
        return self._resolve("alerts", "alert", text, ALERT_PREFIX)

    def list_alerts(self, statuses: Sequence[AlertStatus] | None = None) -> list[Alert]:
        """Return alerts oldest first (by creation time, then ID), optionally only those in one of statuses."""
        where, params = "", {}
        if statuses is not None:
            if not statuses:
                return []
            wanted, params = _in_list("status", [status.value for status in statuses])
            where = f"WHERE {wanted}"
        rows = self._connection.execute(f"SELECT * FROM alerts {where} ORDER BY created_at, id", params)
        return [mapping.alert_from_row(row) for row in rows]

    # --- helpers ---------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The underlying connection (SQL text with :named parameters), for store-internal modules (locks)."""
        return self._connection

    def _require_writable(self) -> None:
        if not self._writable:
            raise StoreError("cannot write in a read session; use store.transaction()")

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        self._require_writable()
        check_lengths(table, values)
        self._connection.execute(_insert_sql(table, tuple(values)), values)

    def _compare_and_set(self, table: str, noun: str, values: dict[str, Any], expected: str) -> None:
        self._require_writable()
        check_lengths(table, values)
        key = values.pop("id")
        # One UPDATE guarded by the status is atomic on any database, not only under BEGIN IMMEDIATE.
        statement = _update_sql(table, tuple(values), "id", guard="status")
        if self._connection.execute(statement, {**values, "key_": key, "expected_": expected}).rowcount == 1:
            return
        stored = self._connection.execute(f"SELECT status FROM {table} WHERE id = :id", {"id": key}).scalar()
        if stored is None:
            raise NotFound(f"{noun} {key} not found")
        raise IllegalTransition(f"{noun} {key} is {stored}, expected {expected}")

    def _resolve(self, table: str, noun: str, text: str, type_prefix: str) -> str:
        if not text.strip():
            article = "an" if noun[0] in "aeiou" else "a"
            raise InvalidInput(f"{article} {noun} ID is required")
        prefix = normalize_prefix(text, type_prefix)  # 'pl-' alone is a prefix of every intent ID
        if len(prefix) > ID_LENGTH:  # longer than any ID: no match, and no query SQLite refuses
            raise NotFound(f"no {noun} matches '{prefix[:40]}…' ({len(prefix):,} characters; IDs are short)")
        pattern = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
        matches = self._connection.execute(
            f"SELECT id FROM {table} WHERE id LIKE :pattern ESCAPE '/' ORDER BY id", {"pattern": pattern}).scalars()
        if prefix in matches:
            return prefix
        if not matches:
            raise NotFound(f"no {noun} matches '{prefix}'")
        if len(matches) > 1:
            raise AmbiguousId(prefix, matches)
        return matches[0]

    def _upsert(self, table: str, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
        for row in rows:
            check_lengths(table, row)
        self._connection.executemany(_upsert_sql(table, tuple(rows[0]), keys), rows)
