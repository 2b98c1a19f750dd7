"""Use cases on operations: status with live P&L, and closing by hand at market (paper or live)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from robson.application.ports import Clock, Exchange, MarketData, Store
from robson.domain.market import check_not_before
from robson.domain.money import fmt
from robson.domain.operation import CloseReason, Operation, OperationStatus, PositionMark, mark
from robson.domain.orders import AuditEvent, AuditKind, OrderRole, OrderStatus, client_order_id
from robson.errors import IllegalTransition, InvalidInput, MarketDataError

if TYPE_CHECKING:  # execution and the monitor (strategies, guards) load only when an operation is closed
    from robson.application.plan import Account
    from robson.application.ports import PaperBook
    from robson.application.watching import Modification, StrategyFor


@dataclass(frozen=True, slots=True)
class OperationView:
    operation: Operation
    mark: PositionMark | None  # None when closed or no price


def operation_status(operation_id: str | None, *, store: Store, market: MarketData,
                     fee_rate: Decimal) -> list[OperationView]:
    """Return one operation (any status) or all ACTIVE ones, marked at the current price."""
    with store.read() as session:
        if operation_id is not None:
            operations = [session.get_operation(session.resolve_operation_id(operation_id))]
        else:
            operations = session.list_operations(OperationStatus.ACTIVE)
    prices: dict[str, Decimal | None] = {}
    views = []
    for op in operations:
        if op.status is not OperationStatus.ACTIVE:
            views.append(OperationView(op, None))
            continue
        if op.symbol not in prices:  # one price fetch per symbol, not per operation
            try:
                prices[op.symbol] = market.last_price(op.symbol).price
            except MarketDataError:
                prices[op.symbol] = None
        price = prices[op.symbol]
        views.append(OperationView(op, mark(op, price, fee_rate) if price is not None else None))
    return views


def last_change(op: Operation) -> datetime:
    """The latest market time an operation was written at: opened, moved, or checked by the monitor."""
    return max(moment for moment in (op.opened_at, op.updated_at, op.last_checked_at) if moment is not None)


def list_operations(status: OperationStatus | None, *, store: Store) -> list[Operation]:
    with store.read() as session:
        return session.list_operations(status)


def _intent(store: Store, intent_id: str):
    with store.read() as session:
        return session.get_intent(intent_id)


def close_operation(operation_id: str, *, store: Store, exchange: Exchange, clock: Clock,
                    market: MarketData | None = None, account: Account | None = None,
                    strategy_for: StrategyFor | None = None) -> Operation:
    """Close an ACTIVE operation at market: cancel its stop, exit, record realized P&L.

    A live operation needs market and account (and strategy_for, to tell a trailed stop): its
    protective order is whatever generation the monitor last placed, and if it filled meanwhile the
    operation closes at that fill instead of selling again. Waits up to OPERATION_LOCK_WAIT_SECONDS
    for a monitor check of the same operation; raise AlreadyRunning past that, IllegalTransition if
    the operation is not ACTIVE or not on this exchange.
    """
    with store.read() as session:
        op = session.get_operation(session.resolve_operation_id(operation_id))
    from robson.application.watching import OPERATION_LOCK_WAIT_SECONDS, operation_lock

    with operation_lock(store, op.id, wait_seconds=OPERATION_LOCK_WAIT_SECONDS):
        with store.read() as session:
            op = session.get_operation(op.id)  # as it is now that no monitor check is changing it
        if op.status is not OperationStatus.ACTIVE:
            raise IllegalTransition(f"operation {op.id} is {op.status.value}: only ACTIVE operations can be closed")
        check_not_before(clock.now(), last_change(op), f"the last change of {op.id}")
        if (op.mode == "paper") != (exchange.name == "paper"):
            raise IllegalTransition(f"operation {op.id} is a {op.mode} operation; it cannot be closed on "
                                    f"{exchange.name}")
        if op.mode != "paper":
            from robson.application.monitor_live import close_live_by_hand  # only live closes need it

            if market is None or account is None:
                raise TypeError("closing a live operation needs its market and account")
            strategy = strategy_for(op.strategy) if strategy_for is not None else None
            return close_live_by_hand(op, store=store, exchange=exchange, market=market, account=account,
                                      strategy=strategy)
        return _close_paper(op, store=store, exchange=exchange, clock=clock)


def _close_paper(op: Operation, *, store: Store, exchange: Exchange, clock: Clock) -> Operation:
    """Cancel the paper stop (it keeps its one id: the paper book reprices it in place) and exit at market."""
    stop_id = client_order_id(op.intent_id, OrderRole.STOP)
    stop = exchange.get_order(op.symbol, stop_id)
    if stop is not None and stop.status is OrderStatus.FILLED:
        raise IllegalTransition(
            f"the protective order of {op.id} already filled on {exchange.name} @ {fmt(stop.average_price)}: "
            "the position is closed there, nothing to sell"
        )
    if stop is not None and stop.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
        exchange.cancel_order(op.symbol, stop_id)
    exit_id = client_order_id(op.intent_id, OrderRole.EXIT)
    exit_order = exchange.get_order(op.symbol, exit_id)
    if exit_order is None:
        from robson.application.sending import record_send, safe_to_send

        intent = _intent(store, op.intent_id)
        safe_to_send(store, exchange, intent, exit_id, "exit order")  # an earlier lost exit may still arrive
        record_send(store, exchange, clock, intent, exit_id,
                    f"exit MARKET {op.side.opposite.value} {fmt(op.quantity)} {op.symbol} ({exit_id})")
        exit_order = exchange.place_market_order(op.symbol, op.side.opposite, op.quantity, exit_id,
                                                 intent_id=op.intent_id)
    now = clock.now()
    closed = op.close(exit_price=exit_order.average_price, exit_fee=exit_order.fee, reason=CloseReason.MANUAL, at=now)
    with store.transaction() as tx:
        tx.update_operation(closed, expected_status=OperationStatus.ACTIVE)
        tx.record(AuditEvent(
            at=now, kind=AuditKind.CLOSED, intent_id=op.intent_id, operation_id=op.id,
            message=f"closed by hand at market @ {fmt(closed.exit_price)} fee {fmt(closed.exit_fee)}, "
                    f"realized P&L {fmt(closed.realized_pnl, 2)} {op.quote_asset}",
        ))
    return closed


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
    from robson.application.watching import OPERATION_LOCK_WAIT_SECONDS, operation_lock

    if stop is None and target is None:
        raise InvalidInput("nothing to modify: give --stop P, --target P or both")
    with store.read() as session:
        op = session.get_operation(session.resolve_operation_id(operation_id))
    if op.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(f"operation {op.id} is {op.status.value}: only ACTIVE operations can be modified")
    check_not_before(clock.now(), last_change(op), f"the last change of {op.id}")
    with operation_lock(store, op.id, wait_seconds=OPERATION_LOCK_WAIT_SECONDS):
        if op.mode != "paper":
            if exchange is None:
                raise InvalidInput(f"operation {op.id} is live: moving its stop needs Binance")
            from robson.application.monitor_live import modify_live  # only live changes need it

            return modify_live(op.id, stop=stop, target=target, allow_loosen=allow_loosen, store=store,
                               exchange=exchange, market=market, account=account,
                               strategy=strategy_for(op.strategy))
        if book is None:
            raise InvalidInput(f"operation {op.id} is a paper operation: moving its stop needs the paper book")
        from robson.application.monitor import modify_paper

        return modify_paper(op.id, stop=stop, target=target, allow_loosen=allow_loosen, store=store, market=market,
                             book=book, account=account, clock=clock, strategy=strategy_for(op.strategy))


