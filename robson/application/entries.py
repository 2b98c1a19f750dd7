"""Use case: watch the entries that wait for their price (intents in WORKING) until they fill, expire or are cancelled.

Every monitor tick (paper and live), `reconcile` and `plan cancel` come through here, holding the
intent's execution lock so no two of them act on one entry at once. For each WORKING intent:

1. its expiry: once passed, the waiting order is cancelled on the exchange (EXPIRED, or what part
   filled is protected);
2. the guards whose inputs change while an order waits (open positions, daily loss, monthly
   drawdown, cooldown) run again: an entry they now refuse is cancelled before it fills (FAILED);
3. on paper, the book fills the order against the candles closed since it was placed (a limit at
   its price or better, a stop at its price or worse: robson.domain.lifecycle.waiting_fill), and
   activates the protection attached to it in the same transaction;
4. what the exchange shows decides the rest: FILLED → WORKING → EXECUTING, and `execute`'s own
   steps place (or find) the protective order and open the operation; a part fill still open
   has its remainder cancelled first, so the part held is protected at once rather than waiting
   for a fill that may never come; an order the exchange cancelled with nothing filled → FAILED.

A fill the guards refuse after the fact (live: the exchange filled between two ticks) is
protected like any other, then exited at market and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from robson.application.ports import Clock, Exchange, MarketData, PaperBook, Store
from robson.domain.intent import IntentEvent, IntentStatus, TradingIntent
from robson.domain.market import datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.money import fmt, fmt_amount
from robson.domain.orders import OPEN_STATUSES, AuditEvent, AuditKind, Order, OrderRole, client_order_id
from robson.errors import AlreadyRunning, AnswerLost, IllegalTransition, LeaseLost, OrderRejected, RobsonError

if TYPE_CHECKING:
    from robson.application.execute import ExecutionResult
    from robson.application.plan import Account
    from robson.domain.strategy import Strategy


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """What one look at a waiting entry did."""

    intent: TradingIntent  # as it is after the look
    outcome: str  # waiting | filled | expired | cancelled | refused | failed | in progress | error
    message: str
    result: ExecutionResult | None = None  # when it filled: the execution (operation, orders)
    fill_candle_open_time: int | None = None  # paper: the candle that traded at the entry price

    @property
    def operation_id(self) -> str | None:
        return self.result.operation.id if self.result is not None and self.result.operation is not None else None


class _FixedClock:
    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


def working_intents(store: Store, exchange_name: str) -> list[TradingIntent]:
    """The WORKING intents whose order rests on exchange_name (cheap: one query)."""
    from robson.application.execute import execution_exchange

    with store.read() as session:
        return [i for i in session.list_intents(IntentStatus.WORKING) if execution_exchange(i) == exchange_name]


def watch_entries(*, store: Store, exchange: Exchange, market: MarketData, account: Account, clock: Clock,
                  strategy_for: Callable[[str], Strategy | None], book: PaperBook | None = None) -> list[EntryCheck]:
    """Look once at every WORKING entry on exchange; book is the paper book when exchange is the paper exchange."""
    checks = []
    for intent in working_intents(store, exchange.name):
        try:
            checks.append(_locked(intent, lambda current: _look(
                current, store=store, exchange=exchange, market=market, account=account, clock=clock,
                strategy=strategy_for(current.strategy), book=book), store=store))
        except LeaseLost:
            raise
        except RobsonError as e:
            checks.append(EntryCheck(intent, "error", str(e) + (f" ({e.hint})" if e.hint else "")))
    return checks


def cancel_working(intent: TradingIntent, *, store: Store, exchange: Exchange, market: MarketData, account: Account,
                   clock: Clock, strategy: Strategy | None) -> EntryCheck:
    """Cancel a WORKING entry on its exchange (`plan cancel`); what part already filled is protected."""
    from robson.application.execute import execution_exchange

    if execution_exchange(intent) != exchange.name:
        raise IllegalTransition(f"intent {intent.id} waits on {execution_exchange(intent)}; it can only be cancelled "
                                "there")

    def cancel(current: TradingIntent) -> EntryCheck:
        if current.status is not IntentStatus.WORKING:
            raise IllegalTransition(f"intent {current.id} is {current.status.value} now: nothing waits to be cancelled")
        return _end_waiting(current, IntentEvent.CANCEL, "cancelled by the user", store=store, exchange=exchange,
                            market=market, account=account, clock=clock, strategy=strategy)

    return _locked(intent, cancel, store=store, wait=True)


def _locked(intent: TradingIntent, act: Callable[[TradingIntent], EntryCheck], *, store: Store,
            wait: bool = False) -> EntryCheck:
    """Run act on the intent as it is under its execution lock (the one `execute` and `reconcile` take)."""
    from robson.application.execute import lock_wait_seconds

    try:
        with store.lock(f"execute:{intent.id}", what=f"execution of {intent.id}",
                        wait_seconds=lock_wait_seconds(store) if wait else 0):
            with store.read() as session:
                current = session.get_intent(intent.id)
            if current.status is not IntentStatus.WORKING and not wait:
                return EntryCheck(current, current.status.value.lower(),
                                  f"settled meanwhile by another run: {current.status.value}")
            return act(current)
    except AlreadyRunning as e:
        if wait:
            raise
        return EntryCheck(intent, "in progress", str(e))


def _look(intent: TradingIntent, *, store: Store, exchange: Exchange, market: MarketData, account: Account,
          clock: Clock, strategy: Strategy | None, book: PaperBook | None) -> EntryCheck:
    now = clock.now()
    entry_id = client_order_id(intent.id, OrderRole.ENTRY)
    entry = exchange.get_order(intent.symbol, entry_id)
    if entry is None:
        return EntryCheck(intent, "error", f"the entry order {entry_id} is not on {exchange.name}",)
    kwargs = dict(store=store, exchange=exchange, market=market, account=account, strategy=strategy)
    if entry.status in OPEN_STATUSES and not entry.filled_quantity:
        if book is not None:  # the paper book trades what the closed candles say, up to the expiry
            refused = _refused_by_guards(intent, store=store, exchange=exchange, market=market, account=account,
                                         strategy=strategy, now=now)
            if refused is not None:
                return _end_waiting(intent, IntentEvent.EXECUTION_FAILED, refused, clock=clock, **kwargs)
            filled = _fill_on_paper(intent, entry, book=book, store=store, market=market, now=now)
            if filled is not None:
                entry, fill_ms = filled
                return _filled(intent, entry, clock=_FixedClock(ms_to_datetime(fill_ms)), fill_ms=fill_ms, **kwargs)
        if intent.expires_at is not None and now >= intent.expires_at:
            return _end_waiting(intent, IntentEvent.ENTRY_EXPIRED,
                                f"expired at {intent.expires_at:%Y-%m-%d %H:%M} UTC", clock=clock, **kwargs)
        if book is None:
            refused = _refused_by_guards(intent, store=store, exchange=exchange, market=market, account=account,
                                         strategy=strategy, now=now)
            if refused is not None:
                return _end_waiting(intent, IntentEvent.EXECUTION_FAILED, refused, clock=clock, **kwargs)
        until = f" until {intent.expires_at:%Y-%m-%d %H:%M} UTC" if intent.expires_at else ""
        return EntryCheck(intent, "waiting", f"{intent.entry_order.value} {intent.side.value} "
                                             f"{fmt(intent.quantity)} {intent.symbol} @ {fmt(intent.entry)} waits{until}")
    if entry.status in OPEN_STATUSES:  # part filled and still open: protect the part now, not after a fill to come
        return _end_waiting(intent, IntentEvent.ENTRY_FILLED, f"part filled ({fmt(entry.filled_quantity)} of "
                            f"{fmt(entry.quantity)}): the rest was cancelled", clock=clock, **kwargs)
    if entry.filled_quantity:
        return _filled(intent, entry, clock=clock, **kwargs)
    reason = f"the entry order {entry_id} is {entry.status.value} on {exchange.name} with nothing filled"
    failed = _transition(store, intent, IntentEvent.EXECUTION_FAILED, clock.now(), reason)
    return EntryCheck(failed, "failed", reason)


def _refused_by_guards(intent: TradingIntent, *, store: Store, exchange: Exchange, market: MarketData,
                       account: Account, strategy: Strategy | None, now: datetime) -> str | None:
    """Run again the guards whose inputs change while an entry waits; say why they refuse it now, or None.

    The balance guard is not among them: what the entry spends is already locked by its order.
    """
    from robson.application.validate import book_view, portfolio_context
    from robson.domain.guards import GUARD_NAMES, PORTFOLIO_GUARDS, Verdict, run_guards

    with store.read() as session:
        book = book_view(session, intent, now, account.fee_rate)
    context = portfolio_context(intent, info=market.symbol_info(intent.symbol), balances=exchange.balances(),
                                book=book, account=account, limits=account.limits_for(strategy), now=now)
    skip = frozenset(GUARD_NAMES) - (PORTFOLIO_GUARDS - {"balance"})
    failed = [r for r in run_guards(context, skip=skip) if r.verdict is Verdict.FAIL]
    if not failed:
        return None
    return "refused at fill time by the guards: " + "; ".join(f"{r.guard}: {r.message}" for r in failed)


def _fill_on_paper(intent: TradingIntent, entry: Order, *, book: PaperBook, store: Store, market: MarketData,
                   now: datetime) -> tuple[Order, int] | None:
    """Fill the paper entry on the first closed candle since it was placed (and before its expiry) that traded
    at its price; return (the filled order, the candle's open time) or None."""
    from robson.application.watching import fetch_candles
    from robson.domain.lifecycle import waiting_fill

    info = market.symbol_info(intent.symbol)
    timeframe, candles = fetch_candles(market, intent.symbol, entry.created_at, now)
    length = timeframe_ms(timeframe)
    placed_ms, now_ms = datetime_to_ms(entry.created_at), datetime_to_ms(now)
    end_ms = min(now_ms, datetime_to_ms(intent.expires_at)) if intent.expires_at is not None else now_ms
    for candle in sorted(candles, key=lambda c: c.open_time):
        # Only candles wholly after the order was placed and closed before its expiry (and by now) can fill it.
        if candle.open_time < placed_ms or candle.open_time + length > end_ms:
            continue
        fill = waiting_fill(intent.entry_order.value, intent.side, intent.entry, entry.quantity, candle, info,
                            maker_fee_rate=book.maker_fee_rate, taker_fee_rate=book.fee_rate,
                            slippage_rate=book.slippage_rate)
        if fill is None:
            continue
        at = ms_to_datetime(candle.open_time)
        with store.transaction() as tx:
            filled = book.fill_waiting(tx, entry.client_order_id, fill, at=at,
                                       protection_id=client_order_id(intent.id, OrderRole.STOP))
            tx.record(AuditEvent(
                at=at, kind=AuditKind.ORDER_FILLED, intent_id=intent.id,
                message=f"entry {intent.entry_order.value.upper()} {intent.side.value} {fmt(filled.quantity)} "
                        f"filled @ {fmt(fill.price)}" + (" (gapped: at the candle's open)" if fill.gapped else "")
                        + f" in the {timeframe} candle of {at:%Y-%m-%d %H:%M} UTC, "
                          f"{'maker' if fill.maker else 'taker'} fee {fmt_amount(fill.fee)} {info.quote_asset}",
                data={"client_order_id": entry.client_order_id, "candle_open_time": candle.open_time,
                      "trigger_price": fmt(fill.trigger_price), "gapped": fill.gapped}))
        return filled, candle.open_time
    return None


def _filled(intent: TradingIntent, entry: Order, *, store: Store, exchange: Exchange, market: MarketData,
            account: Account, clock: Clock, strategy: Strategy | None, fill_ms: int | None = None) -> EntryCheck:
    """The entry filled (or its filled part is all there will be): protect it and open the operation."""
    from robson.application.execute import carry_on

    executing = _transition(store, intent, IntentEvent.ENTRY_FILLED, clock.now(),
                            f"entry filled {fmt(entry.filled_quantity)} @ {fmt(entry.average_price)}")
    result = carry_on(executing, strategy=strategy, store=store, exchange=exchange, market=market, account=account,
                      clock=clock, checked=True)
    op = result.operation
    message = (f"filled {fmt(entry.filled_quantity)} @ {fmt(entry.average_price)} → operation {op.id} "
               f"{op.status.value}, stop {fmt(op.stop)}" if op is not None else "filled")
    if exchange.live and op is not None:
        message += _exit_if_refused(result, store=store, exchange=exchange, market=market, account=account,
                                    strategy=strategy, now=clock.now())
    return EntryCheck(result.intent, "filled", message, result, fill_ms)


def _exit_if_refused(result: ExecutionResult, *, store: Store, exchange: Exchange, market: MarketData,
                     account: Account, strategy: Strategy | None, now: datetime) -> str:
    """A live fill the guards refuse now (it filled between two ticks): exit it at market; say what was done."""
    intent, op = result.intent, result.operation
    assert op is not None
    refused = _refused_by_guards(intent, store=store, exchange=exchange, market=market, account=account,
                                 strategy=strategy, now=now)
    if refused is None:
        return ""
    from robson.application.operations import close_operation

    with store.transaction() as tx:
        tx.record(AuditEvent(at=now, kind=AuditKind.EXECUTION_FAILED, intent_id=intent.id, operation_id=op.id,
                             message=f"the fill is exited at market: {refused}"))
    closed = close_operation(op.id, store=store, exchange=exchange, clock=_FixedClock(now), market=market,
                             account=account, strategy_for=lambda _: strategy)
    return (f"; {refused}: exited at market @ {fmt(closed.exit_price)}, realized P&L "
            f"{fmt(closed.realized_pnl, 2)} {closed.quote_asset}")


def _end_waiting(intent: TradingIntent, event: IntentEvent, why: str, *, store: Store, exchange: Exchange,
                 market: MarketData, account: Account, clock: Clock, strategy: Strategy | None) -> EntryCheck:
    """Cancel the waiting order on the exchange; end the intent (event), or protect what part of it filled."""
    entry_id = client_order_id(intent.id, OrderRole.ENTRY)
    try:
        entry = exchange.cancel_order(intent.symbol, entry_id)
    except OrderRejected:  # no longer open: it filled (or was cancelled) meanwhile
        entry = exchange.get_order(intent.symbol, entry_id)
        if entry is None:
            raise
    except AnswerLost:
        entry = exchange.get_order(intent.symbol, entry_id)
        if entry is None or entry.status in OPEN_STATUSES:
            raise
    if entry.status in OPEN_STATUSES:
        raise RobsonError(f"the entry order {entry_id} is still {entry.status.value} on {exchange.name} after "
                          "cancelling it", hint="run `robson monitor --once` again in a moment")
    if entry.filled_quantity:  # a part (or all) filled before the cancel: it is a position, protected now
        check = _filled(intent, entry, store=store, exchange=exchange, market=market, account=account, clock=clock,
                        strategy=strategy)
        part = "" if entry.filled_quantity == entry.quantity else " (the rest was cancelled)"
        return EntryCheck(check.intent, "filled", f"{why}, but {fmt(entry.filled_quantity)} had filled{part}: "
                                                  f"{check.message}", check.result)
    ended = _transition(store, intent, event, clock.now(), why)
    outcome = {IntentEvent.ENTRY_EXPIRED: "expired", IntentEvent.CANCEL: "cancelled"}.get(event, "refused")
    return EntryCheck(ended, outcome, f"{why}: the {intent.entry_order.value} order {entry_id} was cancelled on "
                                      f"{exchange.name}, nothing filled")


_AUDIT = {IntentEvent.ENTRY_EXPIRED: AuditKind.ENTRY_EXPIRED, IntentEvent.CANCEL: AuditKind.CANCELLED,
          IntentEvent.EXECUTION_FAILED: AuditKind.EXECUTION_FAILED, IntentEvent.ENTRY_FILLED: AuditKind.ORDER_FILLED}


def _transition(store: Store, intent: TradingIntent, event: IntentEvent, at: datetime, why: str) -> TradingIntent:
    """Move a WORKING intent on event, with its audit event, in one transaction."""
    status = {IntentEvent.ENTRY_FILLED: "executing", IntentEvent.ENTRY_EXPIRED: "expired",
              IntentEvent.CANCEL: "cancelled", IntentEvent.EXECUTION_FAILED: "failed"}[event]
    execution = {**(intent.execution or {}), "status": status}
    if event is not IntentEvent.ENTRY_FILLED:
        execution["reason"] = why
    changed = intent.apply(event, at, execution=execution)
    with store.transaction() as tx:
        tx.update_intent(changed, expected_status=IntentStatus.WORKING)
        if event is not IntentEvent.ENTRY_FILLED:  # a fill is recorded with the order's own event
            tx.record(AuditEvent(at=at, kind=_AUDIT[event], intent_id=intent.id, message=why))
    return changed
