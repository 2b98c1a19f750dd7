"""Use cases on operations: status with live P&L, and closing by hand at market (paper or live)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from robson.application.ports import Clock, Exchange, MarketData, PaperBook, Store
from robson.domain.market import check_not_before
from robson.domain.money import fmt, fmt_amount
from robson.domain.operation import CloseReason, Operation, OperationStatus, PositionMark, mark
from robson.domain.orders import AuditEvent, AuditKind, OrderRole, OrderStatus, client_order_id
from robson.errors import IllegalTransition, InvalidInput, MarketDataError

if TYPE_CHECKING:  # execution and the monitor (strategies, guards) load only when an operation is closed
    from collections.abc import Sequence

    from robson.application.plan import Account
    from robson.domain.ladder import LadderStep
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
        return _close_paper(op, store=store, exchange=exchange, clock=clock, market=market)


def _close_paper(op: Operation, *, store: Store, exchange: Exchange, clock: Clock,
                 market: MarketData | None) -> Operation:
    """Close a paper position in one transaction: cancel its stop, sell at market, book the close and the audit.

    A disk that fills up or a process killed half way leaves the operation as it was (ACTIVE, its
    stop in place); an exit already FILLED (an older robson closed in steps) is booked at its own
    fill and fee, never at a price the monitor makes up later.
    """
    from robson.domain.lifecycle import market_fill  # the trade rules (strategies, sizing): not for reads of the book

    book: PaperBook = exchange  # type: ignore[assignment]  # the paper exchange settles inside a transaction
    stop_id, exit_id = client_order_id(op.intent_id, OrderRole.STOP), client_order_id(op.intent_id, OrderRole.EXIT)
    now = clock.now()
    prices = market or book.market
    info = prices.symbol_info(op.symbol)
    price = prices.fill_price(op.symbol).price
    with store.transaction() as tx:
        # The paper monitor takes no operation lock: it may have checked (or closed) it since it was read.
        # A check (a later last-check time, a trailed stop) changes nothing of a close at market.
        op = tx.get_operation(op.id)
        fill = market_fill(op.side.opposite, price, op.held, info, fee_rate=book.fee_rate,
                           slippage_rate=book.slippage_rate)
        if op.status is not OperationStatus.ACTIVE:
            raise IllegalTransition(f"operation {op.id} was closed by the monitor meanwhile "
                                    f"({op.close_reason.value if op.close_reason else op.status.value})",
                                    hint=f"look at it with robson operation show {op.id}")
        stop = tx.get_order(stop_id)
        if stop is not None and stop.status is OrderStatus.FILLED:
            raise IllegalTransition(
                f"the protective order of {op.id} already filled on {exchange.name} @ {fmt(stop.average_price)}: "
                "the position is closed there, nothing to sell", hint="run robson monitor --once to book it")
        earlier = tx.get_order(exit_id)
        exit_order = earlier if earlier is not None and earlier.status is OrderStatus.FILLED else \
            book.settle_market_exit(tx, op.symbol, op.side.opposite, op.held, exit_id, price=fill.price,
                                    fee=fill.fee, at=now, cancel=stop_id, intent_id=op.intent_id)
        closed = op.close(exit_price=exit_order.average_price, exit_fee=exit_order.fee, reason=CloseReason.MANUAL,
                          at=max(now, exit_order.updated_at))
        tx.update_operation(closed, expected_status=OperationStatus.ACTIVE)
        adopted = " (the exit already filled before; booked at its own fill)" if exit_order is earlier else ""
        tx.record(AuditEvent(
            at=closed.closed_at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
            message=f"exit MARKET {exit_order.side.value} {fmt(exit_order.quantity)} filled @ "
                    f"{fmt(exit_order.average_price)} fee {fmt_amount(exit_order.fee)} {op.quote_asset}{adopted}",
            data={"client_order_id": exit_id},
        ))
        tx.record(AuditEvent(
            at=closed.closed_at, kind=AuditKind.CLOSED, intent_id=op.intent_id, operation_id=op.id,
            message=f"closed by hand at market @ {fmt(closed.exit_price)} fee {fmt_amount(closed.exit_fee)}, "
                    f"realized P&L {fmt(closed.realized_pnl, 2)} {op.quote_asset}",
        ))
    return closed


def close_part(operation_id: str, part: str, *, store: Store, exchange: Exchange, clock: Clock,
               market: MarketData | None = None, account: Account | None = None,
               strategy_for: StrategyFor | None = None) -> Operation:
    """Close a part of an ACTIVE operation at market (part: '50%' of what is held, or a quantity).

    On paper the part is rounded down to the LOT_SIZE step; its MARKET fill, the paper stop shrunk to
    what is still held, the part booked and the ladder's coming parts re-sized (ladder_for_held) are
    written in one transaction. A live operation protected part by part (one OCO per target) has its
    coming OCOs reduced in place first (robson.application.monitor_live.close_live_part); it needs
    market and account. Raise InvalidInput for a bad part (exit 2, nothing written), IllegalTransition
    unless ACTIVE and on this exchange.
    """
    from robson.application.watching import OPERATION_LOCK_WAIT_SECONDS, operation_lock
    from robson.domain.ladder import ladder_for_held, part_order_id, part_quantity
    from robson.domain.lifecycle import market_fill

    with store.read() as session:
        op = session.get_operation(session.resolve_operation_id(operation_id))
    if (op.mode == "paper") != (exchange.name == "paper"):
        raise IllegalTransition(f"operation {op.id} is a {op.mode} operation; it cannot be closed on {exchange.name}")
    if op.mode != "paper":
        from robson.application.monitor_live import close_live_part  # only live closes need it

        if market is None or account is None:
            raise TypeError("closing a part of a live operation needs its market and account")
        with operation_lock(store, op.id, wait_seconds=OPERATION_LOCK_WAIT_SECONDS):
            with store.read() as session:
                op = session.get_operation(op.id)
            if op.status is not OperationStatus.ACTIVE:
                raise IllegalTransition(f"operation {op.id} is {op.status.value}: only ACTIVE operations can be closed")
            check_not_before(clock.now(), last_change(op), f"the last change of {op.id}")
            strategy = strategy_for(op.strategy) if strategy_for is not None else None
            return close_live_part(op, part, store=store, exchange=exchange, market=market, account=account,
                                   strategy=strategy)
    book: PaperBook = exchange  # type: ignore[assignment]
    info = book.market.symbol_info(op.symbol)
    price = book.market.fill_price(op.symbol).price
    now = clock.now()
    with operation_lock(store, op.id, wait_seconds=OPERATION_LOCK_WAIT_SECONDS):
        with store.transaction() as tx:
            op = tx.get_operation(op.id)
            if op.status is not OperationStatus.ACTIVE:
                raise IllegalTransition(f"operation {op.id} is {op.status.value}: only ACTIVE operations can be closed")
            check_not_before(now, last_change(op), f"the last change of {op.id}")
            quantity = part_quantity(part, op.held, info, price)
            fill = market_fill(op.side.opposite, price, quantity, info, fee_rate=book.fee_rate,
                               slippage_rate=book.slippage_rate)
            order_id = part_order_id(op)
            updated = op.take_part(quantity=quantity, price=fill.price, fee=fill.fee, reason=CloseReason.MANUAL,
                                   at=now, client_order_id=order_id)
            if op.ladder is not None:
                updated = dataclasses.replace(updated, ladder=ladder_for_held(op.ladder, op.reached, updated.held, info))
            book.settle_part(tx, client_order_id(op.intent_id, OrderRole.STOP), order_id, quantity=quantity,
                             price=fill.price, fee=fill.fee, at=now, limit=False, intent_id=op.intent_id)
            tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
            tx.record(AuditEvent(
                at=now, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
                message=f"part closed by hand: MARKET {op.side.opposite.value} {fmt(quantity)} filled @ "
                        f"{fmt(fill.price)} fee {fmt_amount(fill.fee)} {op.quote_asset}; {fmt(updated.held)} still "
                        "held, the stop resized to it",
                data={"client_order_id": order_id, "part": len(updated.parts), "quantity": fmt(quantity),
                      "price": fmt(fill.price), "fee": fmt(fill.fee), "reason": "manual", "held": fmt(updated.held)},
            ))
    return updated


def modify_operation(operation_id: str, *, stop: Decimal | None, target: Decimal | None, allow_loosen: bool,
                     store: Store, market: MarketData, book: PaperBook | None, account: Account, clock: Clock,
                     strategy_for: StrategyFor, exchange: Exchange | None = None,
                     targets: Sequence[LadderStep] | None = None) -> Modification:
    """Move an ACTIVE operation's stop and/or target, or replace its coming targets (paper only), and amend
    (paper) or replace (live) its protective order.

    A live operation needs exchange (and market) to be Binance's; paper needs book. Waits up to
    OPERATION_LOCK_WAIT_SECONDS for a monitor check of the same operation (AlreadyRunning past it).
    Raise InvalidInput (bad price or side, nothing asked, --target with targets, targets on a live
    operation or not beyond the price), IllegalTransition (not ACTIVE, closed
    while catching up, changed meanwhile) or Refused (loosening without allow_loosen, or a
    loosened stop risking more than the strategy's max).
    """
    from robson.application.watching import OPERATION_LOCK_WAIT_SECONDS, operation_lock

    if stop is None and target is None and targets is None:
        raise InvalidInput("nothing to modify: give --stop P, --target P or --targets SPEC")
    if target is not None and targets is not None:
        raise InvalidInput("give --target P (one target for all of it) or --targets SPEC (a ladder), not both")
    with store.read() as session:
        op = session.get_operation(session.resolve_operation_id(operation_id))
    if op.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(f"operation {op.id} is {op.status.value}: only ACTIVE operations can be modified")
    if targets is not None and op.mode != "paper":
        raise InvalidInput(f"operation {op.id} is live: --targets replaces the targets of paper operations only in "
                           "this release", hint="move its single target with --target P, or close a part with "
                                                "robson operation close")
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
                             book=book, account=account, clock=clock, strategy=strategy_for(op.strategy),
                             targets=targets)


