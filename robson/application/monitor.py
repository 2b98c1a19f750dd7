"""Use case: the stop monitor for paper operations, and moving a stop or target by hand.

Each tick walks every ACTIVE paper operation over the candles closed since its last check
(robson.domain.monitoring: stop before target, gaps, trailing, time exits) and writes, in one
transaction per operation, the stop moves, the new last-check time and any close together
with the paper exchange's book (the protective order filled or cancelled, balances settled).
A crash between operations leaves each one either fully checked or not at all, and the next
tick resumes from the stored last-check times; a tick at the same clock changes nothing.
Live operations are not walked here: their exchange-side stop is the source of truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from robson.application.execute import stop_limit_price
from robson.application.plan import Account
from robson.application.ports import Clock, Exchange, MarketData, Store, StoreSession
from robson.application.validate import day_start, month_start, next_month
from robson.domain.guards import HARD_RISK_CEILING_PERCENT
from robson.domain.market import Candle, Side, SymbolInfo, datetime_to_ms, timeframe_ms
from robson.domain.money import HUNDRED, ZERO, fmt, percent
from robson.domain.monitoring import (
    Exit,
    MonitorSettings,
    StopMove,
    TimeExitRule,
    WalkResult,
    apply_walk,
    modify_stop,
    modify_target,
    time_exit_deadline,
    walk_candles,
)
from robson.domain.operation import CloseReason, Operation, OperationStatus, r_multiple
from robson.domain.orders import OPEN_STATUSES, AuditEvent, AuditKind, Order, OrderRole, OrderStatus, client_order_id
from robson.domain.strategy import Strategy
from robson.errors import IllegalTransition, InvalidInput, MarketDataError, NotFound, Refused, RobsonError

MONITOR_LOCK = "monitor"
# How long `operation close` / `modify` wait for a monitor tick checking the same operation (seconds).
OPERATION_LOCK_WAIT_SECONDS = 30
# Finest first: 5m candles catch a wick between checks; coarser ones when a market lacks 5m.
WALK_TIMEFRAMES = ("5m", "15m", "1h")

StrategyFor = Callable[[str], Strategy | None]


@dataclass(frozen=True, slots=True)
class OperationCheck:
    """What one tick did to one operation."""

    before: Operation
    operation: Operation  # as stored after the check
    timeframe: str  # of the candles walked
    candles: int  # new closed candles examined
    moves: tuple[StopMove, ...]
    exit: Exit | None
    notes: tuple[str, ...] = ()  # what else happened (live: a stop re-placed, a partial fill being watched)

    @property
    def closed(self) -> bool:
        return self.exit is not None


@dataclass(frozen=True, slots=True)
class Problem:
    operation_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Halt:
    """A loss limit reached after a close: validate fails new entries until the period ends."""

    rule: str  # "daily loss" or "monthly drawdown"
    realized_pnl: Decimal
    loss_percent: Decimal
    limit_percent: Decimal
    capital: Decimal
    message: str


@dataclass(frozen=True, slots=True)
class MonitorReport:
    at: datetime
    checks: tuple[OperationCheck, ...]
    skipped: tuple[Problem, ...] = ()  # changed, or being changed, by another command meanwhile
    errors: tuple[Problem, ...] = ()
    halts: tuple[Halt, ...] = ()

    @property
    def closed(self) -> list[OperationCheck]:
        return [c for c in self.checks if c.closed]

    @property
    def stop_moves(self) -> int:
        return sum(len(c.moves) for c in self.checks)


class _Changed(Exception):
    """The operation changed in the store while it was being checked."""


def operation_lock(store: Store, operation_id: str, *, wait_seconds: float) -> AbstractContextManager[None]:
    """Hold one operation's lock (monitor check, close, modify); raise AlreadyRunning if busy past wait_seconds.

    Never the monitor's own lock ("monitor"), which a loop holds for days.
    """
    return store.lock(f"operation:{operation_id}", what=f"another command on operation {operation_id}",
                      wait_seconds=wait_seconds)


# --- one tick -------------------------------------------------------------------------------


def monitor_once(*, store: Store, market: MarketData, exchange: PaperBook, account: Account, clock: Clock,
                 strategy_for: StrategyFor) -> MonitorReport:
    """Check every ACTIVE paper operation once against the candles closed since its last check."""
    now = clock.now()
    with store.read() as session:
        active = session.list_operations(OperationStatus.ACTIVE)
    skipped: list[Problem] = []  # live operations are not skipped here: monitor_live.py watches them
    walks: list[_Walk] = []
    errors: list[Problem] = []
    fetched: dict[str, tuple[str, list[Candle]] | RobsonError] = {}
    infos: dict[str, SymbolInfo] = {}
    paper = [op for op in active if op.mode == "paper"]
    for symbol in sorted({op.symbol for op in paper}):  # one candle fetch per symbol, not per operation
        since = min(_since(op) for op in paper if op.symbol == symbol)
        try:
            fetched[symbol] = fetch_candles(market, symbol, since, now)
            infos[symbol] = market.symbol_info(symbol)
        except (MarketDataError, NotFound) as e:  # this symbol's operations fail; the others are checked
            fetched[symbol] = e
    for op in paper:
        found = fetched[op.symbol]
        if isinstance(found, RobsonError):
            errors.append(Problem(op.id, str(found)))
            continue
        timeframe, candles = found
        try:
            walks.append(_walk(op, candles, timeframe, market=market, book=exchange, strategy=strategy_for(op.strategy),
                               now=now, info=infos[op.symbol]))
        except RobsonError as e:
            errors.append(Problem(op.id, str(e)))
    checks = _save_walks(store, walks, exchange, account, skipped, errors)
    halts = loss_halts(store, account, now) if any(c.closed for c in checks) else []
    return MonitorReport(now, tuple(checks), tuple(skipped), tuple(errors), tuple(halts))


CHANGED_MEANWHILE = "changed by another command during the check; checked next tick"


def _save_walks(store: Store, walks: list[_Walk], book: PaperBook, account: Account, skipped: list[Problem],
                errors: list[Problem]) -> list[OperationCheck]:
    """Write every operation's walk in one transaction; if one write fails, write each in its own.

    One transaction for the whole tick keeps a thousand operations fast and is all-or-nothing, so
    a crash leaves the stored last-check times to resume from. An operation whose write fails
    (its paper order in an unexpected state) must not hold back the others: the batch is rolled
    back and each operation is written alone, the failing one reported. An operation changed by
    another command since it was read is never overwritten: it is checked next tick.
    """
    pending = [w for w in walks if w.changed]
    checks = [w.check for w in walks if not w.changed]
    changed: list[Problem] = []
    try:
        with store.transaction() as tx:
            for walk in pending:
                try:
                    checks.append(_save(tx, walk, book, account))
                except _Changed:
                    changed.append(Problem(walk.before.id, CHANGED_MEANWHILE))
    except RobsonError:
        checks, changed = [w.check for w in walks if not w.changed], []
        for walk in pending:
            try:
                with store.transaction() as tx:
                    checks.append(_save(tx, walk, book, account))
            except _Changed:
                changed.append(Problem(walk.before.id, CHANGED_MEANWHILE))
            except RobsonError as e:
                errors.append(Problem(walk.before.id, str(e)))
    skipped.extend(changed)
    return sorted(checks, key=lambda c: (c.before.opened_at, c.before.id))


def _since(op: Operation) -> datetime:
    return op.last_checked_at or op.opened_at


def fetch_candles(market: MarketData, symbol: str, since: datetime, now: datetime) -> tuple[str, list[Candle]]:
    """Return (timeframe, candles) covering since → now on the finest timeframe the market has; raise MarketDataError."""
    error: MarketDataError | None = None
    for timeframe in WALK_TIMEFRAMES:
        # Every candle closed after `since`, plus one: MarketData returns the last `limit` closed ones.
        limit = max(1, (datetime_to_ms(now) - datetime_to_ms(since)) // timeframe_ms(timeframe) + 2)
        try:
            return timeframe, market.candles(symbol, timeframe, limit)
        except MarketDataError as e:
            error = error or e
    assert error is not None
    raise error


def monitor_settings(op: Operation, strategy: Strategy | None, timeframe: str, book: PaperBook,
                     tick_size: Decimal) -> MonitorSettings:
    """Return the walk's settings: fine candles, paper costs, the strategy's trailing and time exit."""
    rule = None
    if strategy is not None and strategy.time_exit is not None:
        # N candles count on the strategy's timeframe; the walk runs on finer ones, so pass the deadline as an age.
        deadline = time_exit_deadline(op.opened_at, strategy.timeframe, strategy.time_exit)
        rule = TimeExitRule(max_age=deadline - op.opened_at) if deadline is not None else None
    return MonitorSettings(timeframe=timeframe, fee_rate=book.fee_rate, slippage_rate=book.slippage_rate,
                           tick_size=tick_size, trailing=strategy is not None and strategy.trails, time_exit=rule)


@dataclass(frozen=True, slots=True)
class _Walk:
    """One operation walked over its new candles, not yet written."""

    before: Operation
    after: Operation
    result: WalkResult
    timeframe: str
    examined: int
    info: SymbolInfo

    @property
    def changed(self) -> bool:
        return self.after != self.before

    @property
    def check(self) -> OperationCheck:
        return OperationCheck(self.before, self.after, self.timeframe, self.examined, self.result.moves,
                              self.result.exit)


def _walk(op: Operation, candles: Sequence[Candle], timeframe: str, *, market: MarketData, book: PaperBook,
          strategy: Strategy | None, now: datetime, info: SymbolInfo | None = None) -> _Walk:
    """Walk one paper operation over its candles (no writes)."""
    info = info or market.symbol_info(op.symbol)
    result = walk_candles(op, candles, monitor_settings(op, strategy, timeframe, book, info.tick_size), now=now)
    if not result.moves and result.exit is None and result.last_checked_at == op.last_checked_at:
        return _Walk(op, op, result, timeframe, 0, info)  # nothing new: write nothing
    updated = apply_walk(op, result)
    if result.moves and result.exit is None:
        updated = dataclasses.replace(updated, updated_at=now)
    return _Walk(op, updated, result, timeframe, _examined(op, candles, timeframe, result), info)


def _save(tx: StoreSession, walk: _Walk, book: PaperBook, account: Account) -> OperationCheck:
    """Write one walk: stop moves, the repriced paper stop, any exit; raise _Changed if the operation moved meanwhile."""
    op, result, updated = walk.before, walk.result, walk.after
    if tx.get_operation(op.id) != op:
        raise _Changed(op.id)
    stop_id = client_order_id(op.intent_id, OrderRole.STOP)
    order = None
    if result.moves or result.exit is not None:
        for move in result.moves:
            tx.record(_stop_moved(op, move, stop_id))
        order = tx.get_order(stop_id)
    if result.moves and order is not None and order.status in OPEN_STATUSES:
        order = book.reprice_stop(tx, stop_id, stop_price=result.stop, target_price=op.target, at=result.moves[-1].at,
                                  limit_price=stop_limit_price(op.side, result.stop, walk.info.round_price,
                                                               account.stop_limit_offset_percent))
    if result.exit is not None:
        updated = _settle_exit(tx, book, op, updated, result.exit, order, stop_id)
    tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
    return OperationCheck(op, updated, walk.timeframe, walk.examined, result.moves, result.exit)


def check_operation(op: Operation, candles: Sequence[Candle], timeframe: str, *, store: Store, market: MarketData,
                    book: PaperBook, account: Account, strategy: Strategy | None, now: datetime) -> OperationCheck:
    """Walk one paper operation and persist the result in one transaction; raise _Changed if it moved meanwhile."""
    walk = _walk(op, candles, timeframe, market=market, book=book, strategy=strategy, now=now)
    if not walk.changed:
        return walk.check
    with store.transaction() as tx:
        return _save(tx, walk, book, account)


def _examined(op: Operation, candles: Sequence[Candle], timeframe: str, result: WalkResult) -> int:
    length = timeframe_ms(timeframe)
    opened = datetime_to_ms(op.opened_at)
    seen = datetime_to_ms(op.last_checked_at) if op.last_checked_at else None
    upto = datetime_to_ms(result.last_checked_at) if result.last_checked_at else None
    return sum(1 for c in candles if c.open_time >= opened and (seen is None or c.open_time + length > seen)
               and upto is not None and c.open_time + length <= upto)


def _stop_moved(op: Operation, move: StopMove, stop_id: str) -> AuditEvent:
    return AuditEvent(
        at=move.at, kind=AuditKind.STOP_MOVED, intent_id=op.intent_id, operation_id=op.id,
        message=f"stop moved {fmt(move.old_stop)} → {fmt(move.new_stop)} ({move.reason}: "
                f"best price {fmt(move.best_price)})",
        data={"old_stop": fmt(move.old_stop), "new_stop": fmt(move.new_stop), "reason": move.reason,
              "best_price": fmt(move.best_price), "candle_open_time": move.candle_open_time,
              "client_order_id": stop_id},
    )


def _settle_exit(tx: StoreSession, book: PaperBook, op: Operation, closed: Operation, exit_: Exit,
                 order: Order | None, stop_id: str) -> Operation:
    """Fill the protective order (stop or target leg) or exit at market; record fill and close; return the close."""
    if order is not None and order.status is OrderStatus.FILLED:
        # The book already shows the fill (robson never leaves it so, but a hand-edited one might): adopt it.
        closed = op.close(exit_price=order.average_price, exit_fee=order.fee, reason=exit_.reason, at=order.updated_at)
        filled, what = order, "protective order"
    elif exit_.reason is not CloseReason.TIME_EXIT and order is not None and order.status in OPEN_STATUSES:
        filled = book.settle_stop(tx, stop_id, price=exit_.price, fee=exit_.fee, at=exit_.at)
        what = "target leg" if exit_.reason is CloseReason.TARGET else "stop"
    else:
        exit_id = client_order_id(op.intent_id, OrderRole.EXIT)
        filled = book.settle_market_exit(tx, op.symbol, op.side.opposite, op.quantity, exit_id, price=exit_.price,
                                         fee=exit_.fee, at=exit_.at, cancel=stop_id, intent_id=op.intent_id)
        what = "exit MARKET"
    gap = " (gapped: filled at the candle's open)" if exit_.gapped else ""
    tx.record(AuditEvent(
        at=closed.closed_at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
        message=f"{what} {filled.side.value} {fmt(filled.quantity)} filled @ {fmt(closed.exit_price)}{gap} "
                f"fee {fmt(closed.exit_fee)} {op.quote_asset}",
        data={"client_order_id": filled.client_order_id},
    ))
    r = r_multiple(closed)
    tx.record(AuditEvent(
        at=closed.closed_at, kind=AuditKind.CLOSED, intent_id=op.intent_id, operation_id=op.id,
        message=f"closed by the monitor: {exit_.reason.value} @ {fmt(closed.exit_price)} fee {fmt(closed.exit_fee)}, "
                f"realized P&L {fmt(closed.realized_pnl, 2)} {op.quote_asset}"
                + (f" ({fmt(r, 2)} R)" if r is not None else ""),
        data={"reason": exit_.reason.value, "price": fmt(closed.exit_price), "trigger_price": fmt(exit_.trigger_price),
              "fee": fmt(closed.exit_fee), "realized_pnl": fmt(closed.realized_pnl), "gapped": exit_.gapped,
              "candle_open_time": exit_.candle_open_time, "client_order_id": filled.client_order_id},
    ))
    return closed


def loss_halts(store: Store, account: Account, now: datetime) -> list[Halt]:
    """Return the loss limits reached today / this month (UTC, market time), as validate's guards see them."""
    with store.read() as session:
        today = session.realized_pnl_between(day_start(now), day_start(now) + timedelta(days=1))
        month = session.realized_pnl_between(month_start(now), next_month(now))
    limits, capital = account.limits, account.capital
    halts = []
    for rule, pnl, limit, period, consequence in (
        ("daily loss", today, limits.daily_loss_percent, "today's", "no new entries until the next UTC day"),
        ("monthly drawdown", month, limits.monthly_drawdown_percent, "this month's",
         "trading HALTED until next month"),
    ):
        loss = -pnl if pnl < 0 else ZERO
        loss_percent = percent(loss, capital)
        if loss_percent >= limit:
            halts.append(Halt(rule, pnl, loss_percent, limit, capital,
                              f"{period} realized loss {fmt(loss, 2)} = {fmt(loss_percent, 2)}% of capital "
                              f"{fmt(capital)} ≥ {fmt(limit, 2)}%: {consequence} (validate fails)"))
    return halts


# --- the watcher ----------------------------------------------------------------------------


def run_monitor(tick: Callable[[], MonitorReport], *, store: Store, on_report: Callable[[MonitorReport], None],
                interval: float | None, sleep: Callable[[float], object], stopping: Callable[[], bool],
                on_error: Callable[[RobsonError], None] | None = None) -> int:
    """Hold the one-monitor lock and tick once (interval None) or until stopping(); return the ticks run.

    Raise AlreadyRunning if another monitor holds the lock. In a loop a failed tick is reported
    through on_error and the next one tries again; stopping() is looked at only between ticks,
    so a signal lets the tick in progress finish.
    """
    ticks = 0
    with store.lock(MONITOR_LOCK, what="robson monitor"):
        while True:
            if interval is None or on_error is None:
                on_report(tick())
            else:
                try:
                    report = tick()
                except RobsonError as e:
                    on_error(e)
                else:
                    on_report(report)
            ticks += 1
            if interval is None or stopping():
                return ticks
            sleep(interval)
            if stopping():
                return ticks


# --- operation modify -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Modification:
    before: Operation
    operation: Operation
    price: Decimal  # the market price the change was checked against
    risk: Decimal  # what the new stop still risks from entry (0 once it locks in profit)
    risk_percent: Decimal  # of the trade's capital
    order: Order | None  # the amended protective order
    catch_up: OperationCheck | None  # the monitor's check run first


def remaining_risk(op: Operation, stop: Decimal) -> Decimal:
    """Return the loss from entry if stop fills, before fees (0 when the stop locks in profit)."""
    loss = (op.entry_price - stop) * op.side.sign * op.quantity
    return loss if loss > 0 else ZERO


def modify_operation(operation_id: str, *, stop: Decimal | None, target: Decimal | None, allow_loosen: bool,
                     store: Store, market: MarketData, book: PaperBook | None, account: Account, clock: Clock,
                     strategy_for: StrategyFor, exchange: Exchange | None = None) -> Modification:
    """Move an ACTIVE operation's stop and/or target and amend (paper) or replace (live) its protective order.

    A live operation needs exchange (and market) to be Binance's; paper needs book. Waits up to
    OPERATION_LOCK_WAIT_SECONDS for a monitor check of the same operation (AlreadyRunning past it).
    Raise InvalidInput (bad price or side, nothing asked), IllegalTransition (not ACTIVE, closed
    while catching up, changed meanwhile) or Refused (loosening without allow_loosen, or a
    loosened stop risking more than the strategy's max).
    """
    if stop is None and target is None:
        raise InvalidInput("nothing to modify: give --stop P, --target P or both")
    with store.read() as session:
        op = session.get_operation(session.resolve_operation_id(operation_id))
    if op.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(f"operation {op.id} is {op.status.value}: only ACTIVE operations can be modified")
    with operation_lock(store, op.id, wait_seconds=OPERATION_LOCK_WAIT_SECONDS):
        if op.mode != "paper":
            if exchange is None:
                raise InvalidInput(f"operation {op.id} is live: moving its stop needs Binance")
            from robson.application.monitor_live import modify_live  # the live monitor builds on this module

            return modify_live(op.id, stop=stop, target=target, allow_loosen=allow_loosen, store=store,
                               exchange=exchange, market=market, account=account,
                               strategy=strategy_for(op.strategy))
        if book is None:
            raise InvalidInput(f"operation {op.id} is a paper operation: moving its stop needs the paper book")
        return _modify_paper(op.id, stop=stop, target=target, allow_loosen=allow_loosen, store=store, market=market,
                             book=book, account=account, clock=clock, strategy=strategy_for(op.strategy))


def _modify_paper(operation_id: str, *, stop: Decimal | None, target: Decimal | None, allow_loosen: bool,
                  store: Store, market: MarketData, book: PaperBook, account: Account, clock: Clock,
                  strategy: Strategy | None) -> Modification:
    with store.read() as session:
        op = session.get_operation(operation_id)
    now = clock.now()
    # Catch up first, so a wick since the last check is judged against the stop as it stood then.
    timeframe, candles = fetch_candles(market, op.symbol, _since(op), now)
    try:
        caught = check_operation(op, candles, timeframe, store=store, market=market, book=book, account=account,
                                 strategy=strategy, now=now)
    except _Changed:
        caught = None
    op = still_active(store, op.id)
    change = new_levels(op, stop=stop, target=target, allow_loosen=allow_loosen, store=store, market=market,
                        account=account, strategy=strategy, now=now)
    updated, price, risk, risk_percent, info = change
    if updated == dataclasses.replace(op, updated_at=now):
        return Modification(op, op, price, risk, risk_percent, None, caught)
    stop_id = client_order_id(op.intent_id, OrderRole.STOP)
    with store.transaction() as tx:
        if tx.get_operation(op.id) != op:
            raise IllegalTransition(f"operation {op.id} changed while it was being modified (the monitor moved or "
                                    "closed it)", hint="look at it with robson operation show, then try again")
        order = tx.get_order(stop_id)
        if order is not None and order.status in OPEN_STATUSES:
            order = book.reprice_stop(tx, stop_id, stop_price=updated.stop, target_price=updated.target, at=now,
                                      limit_price=stop_limit_price(op.side, updated.stop, info.round_price,
                                                                   account.stop_limit_offset_percent))
        tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
        for event in manual_moves(op, updated, price, stop_id, now):
            tx.record(event)
    return Modification(op, updated, price, risk, risk_percent, order, caught)


def still_active(store: Store, operation_id: str) -> Operation:
    """Return the operation as stored; raise IllegalTransition if it closed (while catching up)."""
    with store.read() as session:
        op = session.get_operation(operation_id)
    if op.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(
            f"operation {op.id} closed at its {op.close_reason.value if op.close_reason else 'exit'} "
            f"@ {fmt(op.exit_price)} on {op.closed_at:%Y-%m-%d %H:%M} UTC before this change: nothing to modify",
            hint=f"see robson operation show {op.id}",
        )
    return op


def new_levels(op: Operation, *, stop: Decimal | None, target: Decimal | None, allow_loosen: bool, store: Store,
               market: MarketData, account: Account, strategy: Strategy | None,
               now: datetime) -> tuple[Operation, Decimal, Decimal, Decimal, SymbolInfo]:
    """Return (the operation with the new stop/target, price, risk, risk %, symbol info) after the domain rules.

    Raise InvalidInput for a price on the wrong side, Refused for a loosening not allowed or too risky.
    """
    with store.read() as session:
        intent = session.get_intent(op.intent_id)
    info = market.symbol_info(op.symbol)
    price = market.last_price(op.symbol).price
    new_stop = op.stop if stop is None else modify_stop(op, stop, price=price, allow_loosen=allow_loosen,
                                                        tick_size=info.tick_size)
    new_target = op.target if target is None else modify_target(op, target, price=price, tick_size=info.tick_size)
    risk = remaining_risk(op, new_stop)
    risk_percent = percent(risk, intent.capital)
    if risk > remaining_risk(op, op.stop):
        _check_loosened_risk(op, new_stop, risk, risk_percent, intent.capital, account, strategy, info.round_price)
    updated = dataclasses.replace(op, stop=new_stop, target=new_target, updated_at=now)
    return updated, price, risk, risk_percent, info


def _check_loosened_risk(op: Operation, new_stop: Decimal, risk: Decimal, risk_percent: Decimal, capital: Decimal,
                         account: Account, strategy: Strategy | None,
                         round_price: Callable[..., Decimal]) -> None:
    """Refuse a loosened stop risking more than the risk-per-trade guard allows."""
    limit = min(account.limits_for(strategy).max_risk_percent, HARD_RISK_CEILING_PERCENT)
    if risk_percent <= limit:
        return
    widest = op.entry_price - op.side.sign * capital * limit / HUNDRED / op.quantity
    raise Refused(
        f"risk per trade: stop {fmt(new_stop)} would risk {fmt(risk, 2)} {op.quote_asset} = "
        f"{fmt(risk_percent, 2)}% of capital {fmt(capital)} > max {fmt(limit, 2)}%",
        hint=f"keep the stop at or {'above' if op.side is Side.BUY else 'below'} "
             f"{fmt(round_price(widest, up=op.side is Side.BUY))}",
    )


def manual_moves(before: Operation, after: Operation, price: Decimal, stop_id: str, at: datetime,
                 new_stop_id: str | None = None) -> list[AuditEvent]:
    """Return the STOP_MOVED records of a change by hand; live ones name the order that replaces stop_id."""
    replaced = {} if new_stop_id is None else {"new_client_order_id": new_stop_id}
    then = "" if new_stop_id is None else f"; {stop_id} is replaced by {new_stop_id}"
    events = []
    if after.stop != before.stop:
        loosened = (after.stop - before.stop) * before.side.sign < 0
        events.append(AuditEvent(
            at=at, kind=AuditKind.STOP_MOVED, intent_id=before.intent_id, operation_id=before.id,
            message=f"stop moved {fmt(before.stop)} → {fmt(after.stop)} (by hand{', loosened' if loosened else ''}; "
                    f"price {fmt(price)}){then}",
            data={"old_stop": fmt(before.stop), "new_stop": fmt(after.stop), "reason": "manual",
                  "loosened": loosened, "price": fmt(price), "client_order_id": stop_id, **replaced},
        ))
    if after.target != before.target:
        # No audit kind of its own: the protective OCO is amended, so it sits with the stop moves.
        events.append(AuditEvent(
            at=at, kind=AuditKind.STOP_MOVED, intent_id=before.intent_id, operation_id=before.id,
            message=f"target moved {fmt(before.target)} → {fmt(after.target)} (by hand; price {fmt(price)}){then}",
            data={"old_target": fmt(before.target), "new_target": fmt(after.target), "reason": "manual",
                  "price": fmt(price), "client_order_id": stop_id, **replaced},
        ))
    return events
