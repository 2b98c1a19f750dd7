"""Ports: what the use cases need from the outside world, as Protocols.

Adapters (robson/adapters) implement them; tests pass hand-written fakes or the real
SQLite store. Nothing here imports an adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from robson.domain.intent import EntryOrder, IntentStatus, TradingIntent
from robson.domain.market import Candle, PriceQuote, Side, SymbolInfo
from robson.domain.operation import Operation, OperationStatus
from robson.domain.orders import AuditEvent, Order, Protection
from robson.domain.signals import Decision, Signal, SignalStatus

if TYPE_CHECKING:  # the scan grammar loads only for the commands that scan
    from robson.domain.alerts import Alert, AlertStatus
    from robson.domain.backtest_stats import SavedBacktest
    from robson.domain.conditions import Detection, ScanDefinition, Setup
    from robson.domain.lifecycle import WaitingFill


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        ...


class MarketData(Protocol):
    """Prices, candles and symbol filters; the sample market or Binance."""

    name: str

    def now(self) -> datetime:
        """Return the market's clock (the as-of time for a replayed market)."""
        ...

    def symbols(self) -> list[str]:
        """Return the symbols this market knows."""
        ...

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """Return the filters of symbol; raise NotFound if unknown."""
        ...

    def last_price(self, symbol: str) -> PriceQuote:
        """Return the last price known now (a replay: the close of the last candle closed by now).

        Raise NotFound for an unknown symbol, MarketDataError if there is none.
        """
        ...

    def fill_price(self, symbol: str) -> PriceQuote:
        """Return the price a market order sent now trades at (a replay: the first trade at or after now)."""
        ...

    def candles(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        """Return up to limit candles closed by now, oldest first; raise MarketDataError if none."""
        ...

    def holds(self, symbol: str, timeframe: str) -> bool:
        """Tell whether the market carries candles of timeframe for symbol at all (fresh or not).

        An unknown symbol counts as held: asking for its candles is what says it is unknown.
        """
        ...


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class Exchange(Protocol):
    """Order placement: the paper exchange or a live one. Idempotent by client order id."""

    name: str  # "paper" / "binance"
    live: bool  # True when orders are real

    def send_stamp(self) -> int:
        """Return the exchange's clock in ms; recorded just before an order is sent."""
        ...

    def may_still_arrive(self, send_stamp: int) -> bool:
        """True while an order sent at send_stamp, not seen yet, could still be executed by the exchange."""
        ...

    def test_order(self, symbol: str, side: Side, quantity: Decimal) -> None:
        """Check a market order against the exchange's rules without placing it; raise OrderRejected."""
        ...

    def balances(self) -> dict[str, Balance]:
        """Return balances by asset."""
        ...

    def get_order(self, symbol: str, client_order_id: str) -> Order | None:
        """Look an order up by client id; None if the exchange never saw it."""
        ...

    def place_market_order(
        self, symbol: str, side: Side, quantity: Decimal, client_order_id: str, *, intent_id: str | None = None
    ) -> Order:
        """Send a market order; raise InsufficientBalance, OrderRejected or ExchangeError."""
        ...

    def place_stop_order(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        stop_price: Decimal,
        limit_price: Decimal,
        client_order_id: str,
        *,
        target_price: Decimal | None = None,
        intent_id: str | None = None,
    ) -> Order:
        """Place a protective stop (an OCO with the target when one is given)."""
        ...

    def place_entry_order(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        client_order_id: str,
        *,
        order: EntryOrder,
        price: Decimal,
        stop_limit_price: Decimal | None = None,
        protection: Protection | None = None,
        intent_id: str | None = None,
    ) -> Order:
        """Place an entry that waits for its price; return the entry Order (status NEW, or further along).

        LIMIT rests at price (a buy below the market, a sell above); with protection, the protective
        order is attached so that it goes live when, and only when, the entry has fully filled.
        STOP triggers when the market reaches price (a buy above the market, a sell below) and then
        trades up to stop_limit_price; robson places its protection after the fill. Idempotent by
        client_order_id; raises InsufficientBalance, OrderRejected or ExchangeError.
        """
        ...

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel an open order; raise OrderRejected if it is not open."""
        ...


class AmendableExchange(Exchange, Protocol):
    """A live exchange whose resting protective orders change in place (Binance spot).

    Binance spot locks the base asset a resting order would sell, so a scale-out covers each part
    with its own protective OCO; these two change one without a moment where what it protects has no
    stop. The paper exchange rests nothing on a real book (the monitor fills it from candles) and has
    no need of them.
    """

    def reduce_order(self, symbol: str, client_order_id: str, quantity: Decimal) -> Order:
        """Reduce an open order (both legs of an OCO) to quantity where it rests; idempotent by quantity.

        Raise OrderRejected if it is not open, is smaller than quantity, or quantity breaks a filter.
        """
        ...

    def replace_stop_order(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        stop_price: Decimal,
        limit_price: Decimal,
        cancel_client_order_id: str,
        client_order_id: str,
        *,
        target_price: Decimal | None = None,
        intent_id: str | None = None,
    ) -> Order:
        """Replace an open protective order with a stop (an OCO with target_price); idempotent by client id.

        Raise OrderRejected when nothing changed (the old order is no longer open, a filter failed),
        ReplacementRefused when the old order was cancelled and the new one refused.
        """
        ...


class StoreSession(Protocol):
    """One unit of work on the store: everything written commits together."""

    # intents
    def add_intent(self, intent: TradingIntent) -> None: ...
    def update_intent(self, intent: TradingIntent, *, expected_status: IntentStatus) -> None:
        """Write intent if its stored status is still expected_status; raise IllegalTransition otherwise."""
        ...
    def get_intent(self, intent_id: str) -> TradingIntent:
        """Return the intent by full ID; raise NotFound."""
        ...
    def resolve_intent_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix; raise NotFound or AmbiguousId."""
        ...
    def list_intents(self, status: IntentStatus | None = None) -> list[TradingIntent]: ...

    # operations
    def add_operation(self, operation: Operation) -> None: ...
    def update_operation(self, operation: Operation, *, expected_status: OperationStatus) -> None: ...
    def get_operation(self, operation_id: str) -> Operation: ...
    def resolve_operation_id(self, text: str) -> str: ...
    def list_operations(self, status: OperationStatus | None = None) -> list[Operation]: ...
    def operation_for_intent(self, intent_id: str) -> Operation | None: ...
    def realized_pnl_between(self, start: datetime, end: datetime) -> Decimal:
        """Net realized P&L of operations closed in [start, end)."""
        ...
    def last_stop_out(self, symbol: str, at_or_before: datetime | None = None) -> datetime | None:
        """When an operation on symbol last closed at its stop (at or before a market time), if ever."""
        ...

    # orders and the paper exchange's book
    def add_order(self, order: Order) -> None:
        """Insert an order; raise DuplicateOrder if its client id already exists."""
        ...
    def update_order(self, order: Order) -> None: ...
    def get_order(self, client_order_id: str) -> Order | None: ...
    def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, Order]: ...
    def orders_for_intent(self, intent_id: str) -> list[Order]: ...
    def get_balances(self, account: str) -> dict[str, Balance]: ...
    def set_balance(self, account: str, balance: Balance) -> None: ...

    # audit trail
    def record(self, event: AuditEvent) -> None: ...
    def audit_trail(self, *, intent_id: str | None = None, operation_id: str | None = None) -> list[AuditEvent]: ...

    # scan signals
    def add_signal(self, signal: Signal) -> bool:
        """Insert a signal; return False, changing nothing, if one with its key exists already."""
        ...
    def get_signal(self, signal_id: str) -> Signal:
        """Return the signal by full ID; raise NotFound."""
        ...
    def resolve_signal_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix; raise NotFound or AmbiguousId."""
        ...
    def update_signal(self, signal: Signal, *, expected_status: SignalStatus) -> None:
        """Write signal if its stored status is still expected_status; raise IllegalTransition otherwise."""
        ...
    def list_signals(
        self, status: SignalStatus | None = None, strategy: str | None = None, symbol: str | None = None
    ) -> list[Signal]:
        """Return signals by candle open time then ID, filtered by every argument given."""
        ...

    # price alerts
    def add_alert(self, alert: Alert) -> None: ...
    def update_alert(self, alert: Alert, *, expected_status: AlertStatus) -> None:
        """Write alert if its stored status is still expected_status; raise IllegalTransition otherwise."""
        ...
    def mark_alert_checked(self, alert_id: str, checked_ms: int, at: datetime) -> bool:
        """Move an ACTIVE alert's last check forward to checked_ms; return whether it moved."""
        ...
    def get_alert(self, alert_id: str) -> Alert:
        """Return the alert by full ID; raise NotFound."""
        ...
    def resolve_alert_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix; raise NotFound or AmbiguousId."""
        ...
    def list_alerts(self, statuses: Sequence[AlertStatus] | None = None) -> list[Alert]:
        """Return alerts oldest first, optionally only those in one of statuses."""
        ...

    # saved backtests
    def add_backtest(self, saved: SavedBacktest) -> None: ...
    def get_backtest(self, backtest_id: str) -> SavedBacktest:
        """Return the saved backtest by full ID; raise NotFound."""
        ...
    def resolve_backtest_id(self, text: str) -> str:
        """Resolve a full ID or unique prefix; raise NotFound or AmbiguousId."""
        ...
    def list_backtests(self) -> list[SavedBacktest]:
        """Return the saved backtests, newest first."""
        ...

    # imported market data
    def save_candles(self, symbol: str, timeframe: str, candles: Sequence[Candle]) -> int:
        """Insert or replace candles; return how many were written."""
        ...
    def load_candles(self, symbol: str, timeframe: str, *, end_ms: int | None = None, limit: int | None = None) -> list[Candle]:
        """Return stored candles with open_time < end_ms, the last `limit`, oldest first."""
        ...
    def candle_series(self) -> list[tuple[str, str, int]]:
        """Return (symbol, timeframe, count) for every imported series."""
        ...


class Lease(Protocol):
    """A named lock held for a while: renewed in the background for as long as the block runs."""

    def ensure(self) -> None:
        """Raise LeaseLost unless this process is still sure to hold the lock (renewing it now if due)."""
        ...


class Store(Protocol):
    @property
    def lease_seconds(self) -> float:
        """How long a lock outlives a holder that stops renewing it (crashed, cut off)."""
        ...

    def transaction(self) -> AbstractContextManager[StoreSession]:
        """Open a write transaction (serialized across processes); commit on success.

        Raise LeaseLost, writing nothing, once a lock held through the store can no longer be trusted."""
        ...

    def read(self) -> AbstractContextManager[StoreSession]:
        """Open a read-only session."""
        ...

    def schema_version(self) -> int: ...

    def lock(self, name: str, *, what: str, wait_seconds: float = 0) -> AbstractContextManager[Lease]:
        """Hold a named lock across processes and hosts; raise AlreadyRunning if another process holds it
        past wait_seconds (a crashed holder is taken over once its lease expires, lease_seconds at most)."""
        ...

    def ensure_locks(self) -> None:
        """Raise LeaseLost if a lock held through the store can no longer be trusted: before acting outside it."""
        ...


class SignalEvaluation(Protocol):
    """A strategy's scan definition evaluated over one series of closed candles (oldest first)."""

    def __len__(self) -> int: ...

    def detection(self, setup: Setup, index: int) -> Detection | None:
        """Return the setup's detection at the candle at index (−1: the last), or None."""
        ...

    def decide(self, signal: Signal, setup: Setup) -> Decision:
        """Decide a DETECTED signal from the candles closed after its own; raise MarketDataError if undecidable."""
        ...

    def timeline(self, setup: Setup) -> list[tuple[int, int, int, int]]:
        """Every detection as (candle index, outcome: 0 waiting, 1 confirmed, 2 invalidated, 3 expired,
        deciding candle index or −1, confidence boosts held)."""
        ...


class SignalEngine(Protocol):
    """The one evaluator of the scan grammar (robson/adapters/signal_engine.py)."""

    def evaluate(self, definition: ScanDefinition, series: Sequence[Candle] | Any) -> SignalEvaluation:
        """Compute the definition's indicators over series and evaluate its setups; raise MarketDataError."""
        ...


class PaperBook(Protocol):
    """The paper exchange's book, settled inside the caller's transaction (robson/adapters/paper.py)."""

    name: str

    @property
    def market(self) -> MarketData:
        """The market the paper book fills against."""
        ...

    @property
    def fee_rate(self) -> Decimal: ...

    @property
    def maker_fee_rate(self) -> Decimal: ...

    @property
    def slippage_rate(self) -> Decimal: ...

    def fill_waiting(self, tx: StoreSession, client_order_id: str, fill: WaitingFill, *, at: datetime,
                     protection_id: str | None = None) -> Order:
        """Fill a resting entry and activate its pending protection (robson.domain.lifecycle.waiting_fill)."""
        ...

    def reprice_stop(self, tx: StoreSession, client_order_id: str, *, stop_price: Decimal, limit_price: Decimal,
                     target_price: Decimal | None, at: datetime) -> Order: ...

    def settle_stop(self, tx: StoreSession, client_order_id: str, *, price: Decimal, fee: Decimal,
                    at: datetime) -> Order: ...

    def settle_part(self, tx: StoreSession, stop_id: str, client_order_id: str, *, quantity: Decimal, price: Decimal,
                    fee: Decimal, at: datetime, limit: bool, intent_id: str | None = None) -> Order:
        """Fill a part of a position and shrink the resting stop stop_id by it, in tx; raise OrderRejected."""
        ...

    def settle_market_exit(self, tx: StoreSession, symbol: str, side: Side, quantity: Decimal, client_order_id: str,
                           *, price: Decimal, fee: Decimal, at: datetime, cancel: str | None = None,
                           intent_id: str | None = None) -> Order: ...


class PaperWallet(Protocol):
    """The paper exchange's wallet as a ledger (robson/adapters/paper.py): read and written in the caller's transaction."""

    account: str  # the store's name for the wallet's balances

    @property
    def starting_balances(self) -> dict[str, Decimal]:
        """The configured starting wallet (paper.balances)."""
        ...

    def wallet(self, tx: StoreSession) -> dict[str, Balance]:
        """Return the wallet's balances, seeding it from the configuration on first use."""
        ...
