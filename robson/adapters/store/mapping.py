"""Map table rows to frozen domain dataclasses and back; the only place that knows both.

Encodings:
- Decimal  -> its exact str() as TEXT ("0.00051000" comes back as "0.00051000"), never a float.
- datetime -> fixed-width ISO-8601 UTC text "2024-05-01T12:00:00.000000+00:00", so text order is
  time order; loads as an aware UTC datetime equal to what was stored.
- dict     -> JSON text. Inside it Decimals are written as strings and datetimes as ISO strings,
  and they load back as those strings: JSON fields (intent validation/execution/details, audit
  data) are display data, so nested values are NOT converted back to Decimal or datetime.
- enums    -> their value.
- signal values (indicator name -> Decimal | None) -> JSON of exact Decimal text or null; these
  DO load back as Decimals, since they explain a signal and confirmations compare them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from robson.application.ports import Balance
from robson.domain.guards import Verdict
from robson.domain.intent import EntryOrder, IntentSource, IntentStatus, TradingIntent
from robson.domain.market import Candle, Side
from robson.domain.operation import CloseReason, Operation, OperationStatus, PartialExit
from robson.domain.orders import AuditEvent, AuditKind, Order, OrderStatus, OrderType
from robson.domain.signals import Signal, SignalStatus
from robson.errors import DamagedRecord, InvalidInput, StoreError

if TYPE_CHECKING:  # loaded by the rows that need them: every command reads operations, few read alerts or backtests
    from robson.domain.alerts import Alert
    from robson.domain.backtest_stats import SavedBacktest

Row = Any  # a SQLAlchemy Row: columns as attributes
T = TypeVar("T")

# --- scalar codecs -------------------------------------------------------------


def encode_decimal(value: Decimal) -> str:
    """Return the exact text of a finite Decimal; raise StoreError for floats and NaN."""
    if not isinstance(value, Decimal):
        # A float here would already have lost precision; refuse rather than store it.
        raise StoreError(f"cannot store {value!r}: money and quantities must be Decimal")
    if not value.is_finite():
        raise StoreError(f"cannot store non-finite number {value}")
    return str(value)


def encode_optional_decimal(value: Decimal | None) -> str | None:
    return None if value is None else encode_decimal(value)


class BadStoredValue(DamagedRecord):
    """A stored value that does not decode; the row readers below add the table, row and column."""

    def __init__(self, value: object, problem: str) -> None:
        super().__init__(f"value {_shown(value)} {problem}", hint=DAMAGED_HINT)
        self.value = value
        self.problem = problem


DAMAGED_HINT = "the row was changed outside robson: restore a backup, or correct the value with the sqlite3 tool"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def decode_decimal(text: str) -> Decimal:
    """Return the exact Decimal of stored text; raise BadStoredValue (not a finite number)."""
    try:
        number = Decimal(text)
    except (ArithmeticError, TypeError, ValueError):
        raise BadStoredValue(text, "is not a number") from None
    if not number.is_finite():
        raise BadStoredValue(text, "is not a finite number")
    return number


def decode_optional_decimal(text: str | None) -> Decimal | None:
    return None if text is None else decode_decimal(text)


def encode_datetime(moment: datetime) -> str:
    """Return fixed-width ISO-8601 UTC text; raise StoreError for a naive datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise StoreError(f"cannot store naive datetime {moment.isoformat()}: robson times are UTC-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def encode_optional_datetime(moment: datetime | None) -> str | None:
    return None if moment is None else encode_datetime(moment)


def decode_datetime(text: str) -> datetime:
    """Return the aware UTC datetime of stored ISO text; raise BadStoredValue."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise BadStoredValue(text, "is not an ISO time") from None


def decode_optional_datetime(text: str | None) -> datetime | None:
    return None if text is None else decode_datetime(text)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return encode_datetime(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(data: Mapping[str, Any]) -> str:
    """Return data as JSON text (Decimals and datetimes as strings); raise StoreError if not serializable."""
    try:
        return json.dumps(data, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise StoreError(f"cannot store JSON data: {e}") from e


def encode_optional_json(data: Mapping[str, Any] | None) -> str | None:
    return None if data is None else encode_json(data)


def decode_json(text: str) -> dict[str, Any]:
    """Return the dict of stored JSON text; raise BadStoredValue (only dicts are ever encoded)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise BadStoredValue(text, "is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadStoredValue(text, "is not a JSON object")
    return data


def decode_optional_json(text: str | None) -> dict[str, Any] | None:
    return None if text is None else decode_json(text)


VERDICTS = {v.value for v in Verdict}


def decode_validation(text: str | None) -> dict[str, Any] | None:
    """Return a stored validation report; raise BadStoredValue unless it has the shape validate writes.

    Every reader (plan show, execute, --json) trusts that shape: a verdict and a list of guard
    results, each with its guard, verdict and message.
    """
    report = decode_optional_json(text)
    if report is None:
        return None
    results = report.get("results")
    well_formed = report.get("verdict") in VERDICTS and isinstance(results, list) and all(
        isinstance(r, dict) and r.get("verdict") in VERDICTS and isinstance(r.get("guard"), str)
        and isinstance(r.get("message"), str) for r in results)
    if not well_formed:
        raise BadStoredValue(text, "is not a validation report (a verdict and its guards' results)")
    return report


# --- row readers -------------------------------------------------------------------


def reads(table: str, *key_columns: str) -> Callable[[Callable[[Row], T]], Callable[[Row], T]]:
    """Turn any failure to read a row of table into DamagedRecord naming the row and, when known, the column."""

    def decorate(read: Callable[[Row], T]) -> Callable[[Row], T]:
        @functools.wraps(read)
        def checked(row: Row, *more: Any) -> T:
            try:
                return read(row, *more)
            except (DamagedRecord, InvalidInput, ArithmeticError, TypeError, ValueError, KeyError) as e:
                raise damaged(table, key_columns, row, e) from None

        return checked

    return decorate


def damaged(table: str, key_columns: tuple[str, ...], row: Row, error: Exception) -> DamagedRecord:
    """Return the error for a row of table that could not be read back."""
    columns = dict(row._mapping)
    key = "/".join(str(columns.get(name)) for name in key_columns)
    if isinstance(error, BadStoredValue):
        column = next((name for name, value in columns.items() if value == error.value), None)
        problem = f"{_shown(error.value)} {error.problem}"
    else:  # an unknown enum value, a missing column...
        column = next((name for name, value in columns.items()
                       if isinstance(value, str) and value and repr(value) in str(error)), None)
        problem = f"{_shown(columns[column])} is not valid" if column else f"cannot be read ({error})"
    where = f"{table} row {key}" + (f", column {column}" if column else "")
    return DamagedRecord(f"{where}: {problem}", hint=DAMAGED_HINT)


# --- intents ----------------------------------------------------------------------


def intent_to_row(intent: TradingIntent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "status": intent.status.value,
        "strategy": intent.strategy,
        "source": intent.source.value,
        "timeframe": intent.timeframe,
        "capital": encode_decimal(intent.capital),
        "risk_percent": encode_decimal(intent.risk_percent),
        "entry": encode_decimal(intent.entry),
        "stop": encode_decimal(intent.stop),
        "stop_method": intent.stop_method,
        "quantity": encode_decimal(intent.quantity),
        "target": encode_optional_decimal(intent.target),
        "created_at": encode_datetime(intent.created_at),
        "updated_at": encode_datetime(intent.updated_at),
        "note": intent.note,
        "confidence": encode_optional_decimal(intent.confidence),
        "signal_id": intent.signal_id,
        "validation": encode_optional_json(intent.validation),
        "validated_at": encode_optional_datetime(intent.validated_at),
        "execution": encode_optional_json(intent.execution),
        "operation_id": intent.operation_id,
        "details": encode_json(intent.details),
        "entry_order": None if intent.entry_order is EntryOrder.MARKET else intent.entry_order.value,
        "expires_at": encode_optional_datetime(intent.expires_at),
    }


@reads("intents", "id")
def intent_from_row(row: Row) -> TradingIntent:
    return TradingIntent(
        id=row.id,
        symbol=row.symbol,
        side=Side(row.side),
        status=IntentStatus(row.status),
        strategy=row.strategy,
        source=IntentSource(row.source),
        timeframe=row.timeframe,
        capital=decode_decimal(row.capital),
        risk_percent=decode_decimal(row.risk_percent),
        entry=decode_decimal(row.entry),
        stop=decode_decimal(row.stop),
        stop_method=row.stop_method,
        quantity=decode_decimal(row.quantity),
        target=decode_optional_decimal(row.target),
        created_at=decode_datetime(row.created_at),
        updated_at=decode_datetime(row.updated_at),
        note=row.note,
        confidence=decode_optional_decimal(row.confidence),
        signal_id=row.signal_id,
        validation=decode_validation(row.validation),
        validated_at=decode_optional_datetime(row.validated_at),
        execution=decode_optional_json(row.execution),
        operation_id=row.operation_id,
        details=decode_json(row.details),
        entry_order=EntryOrder(row.entry_order) if row.entry_order else EntryOrder.MARKET,
        expires_at=decode_optional_datetime(row.expires_at),
    )


# --- operations -------------------------------------------------------------------


def operation_to_row(operation: Operation) -> dict[str, Any]:
    return {
        "id": operation.id,
        "intent_id": operation.intent_id,
        "symbol": operation.symbol,
        "side": operation.side.value,
        "status": operation.status.value,
        "mode": operation.mode,
        "strategy": operation.strategy,
        "quantity": encode_decimal(operation.quantity),
        "entry_price": encode_decimal(operation.entry_price),
        "entry_fee": encode_decimal(operation.entry_fee),
        "initial_stop": encode_decimal(operation.initial_stop),
        "stop": encode_decimal(operation.stop),
        "target": encode_optional_decimal(operation.target),
        "opened_at": encode_datetime(operation.opened_at),
        "updated_at": encode_datetime(operation.updated_at),
        "quote_asset": operation.quote_asset,
        "exit_price": encode_optional_decimal(operation.exit_price),
        "exit_fee": encode_decimal(operation.exit_fee),
        "realized_pnl": encode_optional_decimal(operation.realized_pnl),
        "close_reason": None if operation.close_reason is None else operation.close_reason.value,
        "closed_at": encode_optional_datetime(operation.closed_at),
        "last_checked_at": encode_optional_datetime(operation.last_checked_at),
        "ladder": None if operation.ladder is None else encode_json(_ladder().ladder_doc(operation.ladder)),
        "reached": operation.reached,
    }


def partial_exit_to_row(operation_id: str, part: PartialExit) -> dict[str, Any]:
    return {
        "operation_id": operation_id,
        "number": part.number,
        "target": part.target,
        "quantity": encode_decimal(part.quantity),
        "price": encode_decimal(part.price),
        "fee": encode_decimal(part.fee),
        "reason": part.reason.value,
        "at": encode_datetime(part.at),
        "client_order_id": part.client_order_id,
    }


@reads("partial_exits", "operation_id", "number")
def partial_exit_from_row(row: Row) -> PartialExit:
    return PartialExit(number=row.number, quantity=decode_decimal(row.quantity), price=decode_decimal(row.price),
                       fee=decode_decimal(row.fee), reason=CloseReason(row.reason), at=decode_datetime(row.at),
                       client_order_id=row.client_order_id, target=row.target)


@reads("operations", "id")
def operation_from_row(row: Row, parts: tuple[PartialExit, ...] = ()) -> Operation:
    return Operation(
        id=row.id,
        intent_id=row.intent_id,
        symbol=row.symbol,
        side=Side(row.side),
        status=OperationStatus(row.status),
        mode=row.mode,
        strategy=row.strategy,
        quantity=decode_decimal(row.quantity),
        entry_price=decode_decimal(row.entry_price),
        entry_fee=decode_decimal(row.entry_fee),
        initial_stop=decode_decimal(row.initial_stop),
        stop=decode_decimal(row.stop),
        target=decode_optional_decimal(row.target),
        opened_at=decode_datetime(row.opened_at),
        updated_at=decode_datetime(row.updated_at),
        quote_asset=row.quote_asset,
        exit_price=decode_optional_decimal(row.exit_price),
        exit_fee=decode_decimal(row.exit_fee),
        realized_pnl=decode_optional_decimal(row.realized_pnl),
        close_reason=None if row.close_reason is None else CloseReason(row.close_reason),
        closed_at=decode_optional_datetime(row.closed_at),
        last_checked_at=decode_optional_datetime(row.last_checked_at),
        parts=parts,
        ladder=None if row.ladder is None else _ladder().ladder_from_doc(decode_json(row.ladder)),
        reached=row.reached,
    )


# --- orders, balances, audit, candles ---------------------------------------------


def order_to_row(order: Order) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "exchange": order.exchange,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": encode_decimal(order.quantity),
        "status": order.status.value,
        "created_at": encode_datetime(order.created_at),
        "updated_at": encode_datetime(order.updated_at),
        "price": encode_optional_decimal(order.price),
        "stop_price": encode_optional_decimal(order.stop_price),
        "target_price": encode_optional_decimal(order.target_price),
        "filled_quantity": encode_decimal(order.filled_quantity),
        "average_price": encode_optional_decimal(order.average_price),
        "fee": encode_decimal(order.fee),
        "fee_asset": order.fee_asset,
        "exchange_order_id": order.exchange_order_id,
        "intent_id": order.intent_id,
        "operation_id": order.operation_id,
    }


@reads("orders", "client_order_id")
def order_from_row(row: Row) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        exchange=row.exchange,
        symbol=row.symbol,
        side=Side(row.side),
        type=OrderType(row.type),
        quantity=decode_decimal(row.quantity),
        status=OrderStatus(row.status),
        created_at=decode_datetime(row.created_at),
        updated_at=decode_datetime(row.updated_at),
        price=decode_optional_decimal(row.price),
        stop_price=decode_optional_decimal(row.stop_price),
        target_price=decode_optional_decimal(row.target_price),
        filled_quantity=decode_decimal(row.filled_quantity),
        average_price=decode_optional_decimal(row.average_price),
        fee=decode_decimal(row.fee),
        fee_asset=row.fee_asset,
        exchange_order_id=row.exchange_order_id,
        intent_id=row.intent_id,
        operation_id=row.operation_id,
    )


def balance_to_row(account: str, balance: Balance) -> dict[str, Any]:
    return {
        "account": account,
        "asset": balance.asset,
        "free": encode_decimal(balance.free),
        "locked": encode_decimal(balance.locked),
    }


@reads("balances", "account", "asset")
def balance_from_row(row: Row) -> Balance:
    return Balance(asset=row.asset, free=decode_decimal(row.free), locked=decode_decimal(row.locked))


def audit_event_to_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": encode_datetime(event.at),
        "kind": event.kind.value,
        "message": event.message,
        "intent_id": event.intent_id,
        "operation_id": event.operation_id,
        "data": encode_json(event.data),
    }


@reads("audit_events", "id")
def audit_event_from_row(row: Row) -> AuditEvent:
    return AuditEvent(
        at=decode_datetime(row.at),
        kind=AuditKind(row.kind),
        message=row.message,
        intent_id=row.intent_id,
        operation_id=row.operation_id,
        data=decode_json(row.data),
    )


def candle_to_row(symbol: str, timeframe: str, candle: Candle) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "open_time": int(candle.open_time),
        "open": encode_decimal(candle.open),
        "high": encode_decimal(candle.high),
        "low": encode_decimal(candle.low),
        "close": encode_decimal(candle.close),
        "volume": encode_decimal(candle.volume),
    }


@reads("candles", "symbol", "timeframe", "open_time")
def candle_from_row(row: Row) -> Candle:
    return Candle(
        open_time=int(row.open_time),
        open=decode_decimal(row.open),
        high=decode_decimal(row.high),
        low=decode_decimal(row.low),
        close=decode_decimal(row.close),
        volume=decode_decimal(row.volume),
    )


# --- signals ----------------------------------------------------------------------


def encode_signal_values(values: Mapping[str, Decimal | None]) -> str:
    """Return indicator values as JSON of exact Decimal text (null while warming up)."""
    return encode_json({name: encode_optional_decimal(value) for name, value in values.items()})


def decode_signal_values(text: str) -> dict[str, Decimal | None]:
    return {name: decode_optional_decimal(value) for name, value in decode_json(text).items()}


def signal_to_row(signal: Signal) -> dict[str, Any]:
    return {
        "id": signal.id,
        "strategy": signal.strategy,
        "pattern": signal.pattern,
        "symbol": signal.symbol,
        "timeframe": signal.timeframe,
        "candle_open_time": int(signal.candle_open_time),
        "side": signal.side.value,
        "confidence": encode_decimal(signal.confidence),
        "status": signal.status.value,
        "detected_at": encode_datetime(signal.detected_at),
        "updated_at": encode_datetime(signal.updated_at),
        "values": encode_signal_values(signal.values),
        "reason": signal.reason,
        "resolution": signal.resolution,
        "intent_id": signal.intent_id,
    }


@reads("signals", "id")
def signal_from_row(row: Row) -> Signal:
    columns = row._mapping  # row.values would not be the column: use the mapping throughout
    return Signal(
        id=columns["id"],
        strategy=columns["strategy"],
        pattern=columns["pattern"],
        symbol=columns["symbol"],
        timeframe=columns["timeframe"],
        candle_open_time=int(columns["candle_open_time"]),
        side=Side(columns["side"]),
        confidence=decode_decimal(columns["confidence"]),
        status=SignalStatus(columns["status"]),
        detected_at=decode_datetime(columns["detected_at"]),
        updated_at=decode_datetime(columns["updated_at"]),
        values=decode_signal_values(columns["values"]),
        reason=columns["reason"],
        resolution=columns["resolution"],
        intent_id=columns["intent_id"],
    )


def backtest_to_row(saved: SavedBacktest) -> dict[str, Any]:
    return {
        "id": saved.id,
        "created_at": encode_datetime(saved.created_at),
        "strategy": saved.strategy,
        "symbols": ",".join(saved.symbols),
        "trades": int(saved.trades),
        "total_pnl": encode_decimal(saved.total_pnl),
        "document": encode_json(saved.document),
    }


@reads("backtests", "id")
def backtest_from_row(row: Row) -> SavedBacktest:
    from robson.domain.backtest_stats import SavedBacktest

    return SavedBacktest(
        id=row.id,
        created_at=decode_datetime(row.created_at),
        strategy=row.strategy,
        symbols=tuple(s for s in row.symbols.split(",") if s),
        trades=int(row.trades),
        total_pnl=decode_decimal(row.total_pnl),
        document=decode_json(row.document),
    )


# --- price alerts -------------------------------------------------------------------


def alert_to_row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "symbol": alert.symbol,
        "direction": alert.direction.value,
        "price": encode_decimal(alert.price),
        "note": alert.note,
        "plan_id": alert.plan_id,
        "status": alert.status.value,
        "created_at": encode_datetime(alert.created_at),
        "updated_at": encode_datetime(alert.updated_at),
        "checked_ms": alert.checked_ms,
        "fired_at": encode_optional_datetime(alert.fired_at),
        "fired_candle_ms": alert.fired_candle_ms,
        "fired_price": encode_optional_decimal(alert.fired_price),
        "verdict": encode_optional_json(alert.verdict),
    }


@reads("alerts", "id")
def alert_from_row(row: Row) -> Alert:
    from robson.domain.alerts import Alert, AlertStatus, Direction

    return Alert(
        id=row.id,
        symbol=row.symbol,
        direction=Direction(row.direction),
        price=decode_decimal(row.price),
        note=row.note,
        plan_id=row.plan_id,
        status=AlertStatus(row.status),
        created_at=decode_datetime(row.created_at),
        updated_at=decode_datetime(row.updated_at),
        checked_ms=None if row.checked_ms is None else int(row.checked_ms),
        fired_at=decode_optional_datetime(row.fired_at),
        fired_candle_ms=None if row.fired_candle_ms is None else int(row.fired_candle_ms),
        fired_price=decode_optional_decimal(row.fired_price),
        verdict=decode_optional_json(row.verdict),
    )


def _ladder():
    """The ladder module, loaded by the first operation that has a ladder of targets."""
    from robson.domain import ladder

    return ladder
