"""What the paper and live monitors share: their reports, the locks, the candles they walk, loss halts, stop edits.

robson/application/monitor.py watches paper operations, robson/application/monitor_live.py
live ones (the exchange-side stop is the source of truth); both build on this module and on the
trade lifecycle in robson/domain/lifecycle.py, and neither imports the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from robson.application.plan import Account
from robson.application.ports import MarketData, Store
from robson.application.validate import realized_so_far
from robson.domain.guards import HARD_RISK_CEILING_PERCENT
from robson.domain.market import Candle, Side, SymbolInfo, datetime_to_ms, timeframe_ms
from robson.domain.money import HUNDRED, ZERO, fmt, percent
from robson.domain.monitoring import (
    Exit,
    StopMove,
    WalkResult,
    modify_stop,
    modify_target,
)
from robson.domain.operation import Operation, OperationStatus, PartialExit
from robson.domain.orders import AuditEvent, AuditKind, Order
from robson.domain.strategy import Strategy
from robson.errors import IllegalTransition, LeaseLost, MarketDataError, Refused, RobsonError

if TYPE_CHECKING:  # the alert check is built on this module (fetch_candles)
    from robson.application.alerts import AlertReport

MONITOR_LOCK = "monitor"
# How long `operation close` / `modify` wait for a monitor tick checking the same operation (seconds).
OPERATION_LOCK_WAIT_SECONDS = 30
# Finest first: 5m candles catch a wick between checks; coarser ones when a market lacks 5m.
WALK_TIMEFRAMES = ("5m", "15m", "1h")

StrategyFor = Callable[[str], Strategy | None]
CHANGED_MEANWHILE = "changed by another command during the check; checked next tick"


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
    parts: tuple[PartialExit, ...] = ()  # the parts of the position this check took (ladder targets)

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
    # Intents still EXECUTING after the tick's reconcile (id: the intent's): a position may be held with no stop.
    unresolved: tuple[Problem, ...] = ()
    alerts: AlertReport | None = None  # the price alerts checked on this tick (robson.application.alerts)
    entries: tuple[Any, ...] = ()  # the tick's look at each waiting entry (robson.application.entries.EntryCheck)

    @property
    def entries_filled(self) -> list[Any]:
        return [e for e in self.entries if e.outcome == "filled"]

    @property
    def closed(self) -> list[OperationCheck]:
        return [c for c in self.checks if c.closed]

    @property
    def stop_moves(self) -> int:
        return sum(len(c.moves) for c in self.checks)



def strategy_of(op: Operation, strategy_for: StrategyFor, errors: list[Problem]) -> Strategy | None:
    """The operation's strategy; when its file is broken, None (the stop and target are still watched, not the
    strategy's trailing or time exit) and the problem reported for that operation alone."""
    try:
        return strategy_for(op.strategy)
    except RobsonError as e:
        errors.append(Problem(op.id, f"{e.message}: its stop and target are still watched, its trailing and "
                                     "time exit are not until the strategy file is fixed"))
        return None


def operation_lock(store: Store, operation_id: str, *, wait_seconds: float) -> AbstractContextManager[None]:
    """Hold one operation's lock (monitor check, close, modify); raise AlreadyRunning if busy past wait_seconds.

    Never the monitor's own lock ("monitor"), which a loop holds for days.
    """
    return store.lock(f"operation:{operation_id}", what=f"another command on operation {operation_id}",
                      wait_seconds=wait_seconds)


def checked_since(op: Operation) -> datetime:
    """When an operation was last checked (its opening if never)."""
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


def candles_examined(op: Operation, candles: Sequence[Candle], timeframe: str, result: WalkResult) -> int:
    """How many of candles a walk examined for the first time."""
    length = timeframe_ms(timeframe)
    opened = datetime_to_ms(op.opened_at)
    seen = datetime_to_ms(op.last_checked_at) if op.last_checked_at else None
    upto = datetime_to_ms(result.last_checked_at) if result.last_checked_at else None
    return sum(1 for c in candles if c.open_time >= opened and (seen is None or c.open_time + length > seen)
               and upto is not None and c.open_time + length <= upto)


def stop_moved_event(op: Operation, move: StopMove, stop_id: str) -> AuditEvent:
    """The STOP_MOVED record of a move the walk made (trailing)."""
    return AuditEvent(
        at=move.at, kind=AuditKind.STOP_MOVED, intent_id=op.intent_id, operation_id=op.id,
        message=f"stop moved {fmt(move.old_stop)} → {fmt(move.new_stop)} ({move.reason}: "
                f"best price {fmt(move.best_price)})",
        data={"old_stop": fmt(move.old_stop), "new_stop": fmt(move.new_stop), "reason": move.reason,
              "best_price": fmt(move.best_price), "candle_open_time": move.candle_open_time,
              "client_order_id": stop_id},
    )


def loss_halts(store: Store, account: Account, now: datetime) -> list[Halt]:
    """Return the loss limits reached today / this month (UTC, market time), as validate's guards see them."""
    with store.read() as session:
        today, month = realized_so_far(session, now)
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

    Raise AlreadyRunning if another monitor holds the lock, LeaseLost (before the next tick, or from
    the tick's first write) once the lock can no longer be trusted: two monitors never act at once.
    In a loop a failed tick is reported through on_error and the next one tries again; stopping()
    is looked at only between ticks, so a signal lets the tick in progress finish.
    """
    ticks = 0
    with store.lock(MONITOR_LOCK, what="robson monitor") as lease:
        while True:
            lease.ensure()
            if interval is None or on_error is None:
                on_report(tick())
            else:
                try:
                    report = tick()
                except LeaseLost:
                    raise
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
    loss = (op.entry_price - stop) * op.side.sign * op.held
    return loss if loss > 0 else ZERO


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
    """Return the STOP_MOVED / TARGET_MOVED records of a change by hand; live ones name the order replacing stop_id."""
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
        events.append(AuditEvent(
            at=at, kind=AuditKind.TARGET_MOVED, intent_id=before.intent_id, operation_id=before.id,
            message=f"target moved {fmt(before.target)} → {fmt(after.target)} (by hand; price {fmt(price)}){then}",
            data={"old_target": fmt(before.target), "new_target": fmt(after.target), "reason": "manual",
                  "price": fmt(price), "client_order_id": stop_id, **replaced},
        ))
    return events



def targets_replaced_event(before: Operation, after: Operation, price: Decimal, stop_id: str,
                           at: datetime) -> AuditEvent:
    """Return the TARGET_MOVED record of a ladder whose coming targets were replaced by hand."""
    from robson.domain.ladder import ladder_doc

    def coming(op: Operation) -> list[dict[str, Any]]:
        if op.ladder is None:
            return [] if op.target is None else [{"target": fmt(op.target), "quantity": fmt(op.held)}]
        return [{"number": p["number"], "at": p["at"], "close": p["close"], "then_stop": p["then_stop"],
                 "target": p["target"], "quantity": p["quantity"]}
                for p in ladder_doc(op.ladder)["parts"][op.reached:]]

    new = coming(after)
    listed = "; ".join(f"#{p['number']} {p['at']} {p['target']} closes {p['quantity']}"
                       + (f" then stop {p['then_stop']}" if p["then_stop"] != "keep" else "") for p in new)
    return AuditEvent(
        at=at, kind=AuditKind.TARGET_MOVED, intent_id=before.intent_id, operation_id=before.id,
        message=f"targets replaced by hand (price {fmt(price)}; {fmt(after.held)} held): {listed}",
        data={"old_targets": coming(before), "new_targets": new, "old_target": fmt(before.target),
              "new_target": fmt(after.target), "reason": "manual", "price": fmt(price), "client_order_id": stop_id},
    )
