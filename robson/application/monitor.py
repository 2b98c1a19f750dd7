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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from robson.application.plan import Account
from robson.application.ports import Clock, MarketData, PaperBook, Store, StoreSession
from robson.application.watching import (
    CHANGED_MEANWHILE,
    Modification,
    MonitorReport,
    OperationCheck,
    Problem,
    StrategyFor,
    candles_examined,
    strategy_of,
    checked_since,
    fetch_candles,
    loss_halts,
    manual_moves,
    new_levels,
    still_active,
    stop_moved_event,
    targets_replaced_event,
)
from robson.domain.ladder import LadderStep, book_walk, fill_exit, replace_ladder, walk_operation
from robson.domain.lifecycle import stop_limit_price, walk_settings
from robson.domain.market import Candle, SymbolInfo, datetime_to_ms
from robson.domain.money import fmt, fmt_amount
from robson.domain.monitoring import (
    Exit,
    MonitorSettings,
    WalkResult,
    apply_walk,
    walk_candles,
)
from robson.domain.operation import CloseReason, Operation, OperationStatus, r_multiple
from robson.domain.orders import OPEN_STATUSES, AuditEvent, AuditKind, Order, OrderRole, OrderStatus, client_order_id
from robson.domain.strategy import Strategy
from robson.errors import IllegalTransition, LeaseLost, MarketDataError, NotFound, RobsonError

class _Changed(Exception):
    """The operation changed in the store while it was being checked."""


# --- one tick -------------------------------------------------------------------------------


def monitor_once(*, store: Store, market: MarketData, exchange: PaperBook, account: Account, clock: Clock,
                 strategy_for: StrategyFor) -> MonitorReport:
    """Check every ACTIVE paper operation once against the candles closed since its last check.

    An operation a waiting entry opened opens at the candle that filled it; until a walk has
    passed that candle, only its stop is checked on it (the entry filled somewhere inside it, so a
    target reached in it may have come before the fill; a stop is taken, stop first), whichever
    run opened it: this tick, `reconcile`, or a tick cut short before it walked the operation.
    """
    now = clock.now()
    with store.read() as session:
        active = session.list_operations(OperationStatus.ACTIVE)
        filled_in = {op.id: datetime_to_ms(op.opened_at) for op in active if op.mode == "paper"
                     and op.last_checked_at == op.opened_at and session.get_intent(op.intent_id).waits}
    skipped: list[Problem] = []  # live operations are not skipped here: monitor_live.py watches them
    walks: list[_Walk] = []
    errors: list[Problem] = []
    fetched: dict[str, tuple[str, list[Candle]] | RobsonError] = {}
    infos: dict[str, SymbolInfo] = {}
    paper = [op for op in active if op.mode == "paper"]
    for symbol in sorted({op.symbol for op in paper}):  # one candle fetch per symbol, not per operation
        since = min(checked_since(op) for op in paper if op.symbol == symbol)
        try:
            fetched[symbol] = fetch_candles(market, symbol, since, now)
            infos[symbol] = market.symbol_info(symbol)
        except (MarketDataError, NotFound) as e:  # this symbol's operations fail; the others are checked
            fetched[symbol] = e
    adopted = _filled_exits(store, paper)
    for op in paper:
        if op.id in adopted:  # closed by hand before, its exit filled, the close never written: book that fill
            walks.append(_adopt_exit(op, adopted[op.id], infos.get(op.symbol) or market.symbol_info(op.symbol)))
            continue
        found = fetched[op.symbol]
        if isinstance(found, RobsonError):
            errors.append(Problem(op.id, str(found)))
            continue
        timeframe, candles = found
        strategy = strategy_of(op, strategy_for, errors)
        try:
            walks.append(_walk(op, candles, timeframe, market=market, book=exchange, strategy=strategy,
                               now=now, info=infos[op.symbol], filled_in=filled_in.get(op.id)))
        except RobsonError as e:
            errors.append(Problem(op.id, str(e)))
    checks = _save_walks(store, walks, exchange, account, skipped, errors)
    halts = loss_halts(store, account, now) if any(c.closed for c in checks) else []
    return MonitorReport(now, tuple(checks), tuple(skipped), tuple(errors), tuple(halts))


def _filled_exits(store: Store, paper: list[Operation]) -> dict[str, Order]:
    """The ACTIVE operations whose market exit already FILLED (a close interrupted in an older robson)."""
    exit_ids = {client_order_id(op.intent_id, OrderRole.EXIT): op.id for op in paper}
    with store.read() as session:
        found = session.get_orders(list(exit_ids))  # one query for the whole tick, not one per operation
    return {exit_ids[order_id]: order for order_id, order in found.items() if order.status is OrderStatus.FILLED}


def _adopt_exit(op: Operation, order: Order, info: SymbolInfo) -> _Walk:
    """A walk that closes the operation at its filled exit's own price and fee (never at a price it did not get)."""
    exit_ = Exit(at=order.updated_at, price=order.average_price, trigger_price=order.average_price, fee=order.fee,
                 reason=CloseReason.MANUAL, candle_open_time=datetime_to_ms(order.updated_at))
    result = WalkResult(moves=(), exit=exit_, stop=op.stop, last_checked_at=op.last_checked_at)
    return _Walk(op, apply_walk(op, result), result, "-", 0, info)


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
    except LeaseLost:
        raise
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
          strategy: Strategy | None, now: datetime, info: SymbolInfo | None = None,
          filled_in: int | None = None) -> _Walk:
    """Walk one paper operation over its candles (no writes)."""
    info = info or market.symbol_info(op.symbol)
    settings = walk_settings(op, strategy, timeframe, fee_rate=book.fee_rate, slippage_rate=book.slippage_rate,
                             tick_size=info.tick_size)
    walked = op
    result = None
    if filled_in is not None and op.last_checked_at == op.opened_at:
        # The candle the entry filled in: its stop only, no target, no trailing on extremes it may have had before.
        result = walk_candles(dataclasses.replace(op, target=None), [c for c in candles if c.open_time == filled_in],
                              dataclasses.replace(settings, trailing=False, time_exit=None), now=now)
        walked = dataclasses.replace(op, last_checked_at=result.last_checked_at)
    if walked.ladder is not None and (result is None or result.exit is None):
        return _ladder_walk(op, walked, candles, timeframe, settings, now=now, info=info)
    if filled_in is None or result.exit is None:
        result = walk_candles(walked, candles, settings, now=now)
    if not result.moves and result.exit is None and result.last_checked_at == op.last_checked_at:
        return _Walk(op, op, result, timeframe, 0, info)  # nothing new: write nothing
    updated = apply_walk(op, result)
    if result.moves and result.exit is None:
        updated = dataclasses.replace(updated, updated_at=now)
    return _Walk(op, updated, result, timeframe, candles_examined(op, candles, timeframe, result), info)


def _ladder_walk(op: Operation, walked: Operation, candles: Sequence[Candle], timeframe: str,
                 settings: MonitorSettings, *, now: datetime, info: SymbolInfo) -> _Walk:
    """Walk an operation with a ladder of targets: each target's part taken, the stop moved by its rule."""
    walk = walk_operation(walked, candles, settings, now=now)
    final = walk.fills[-1] if walk.closed else None
    result = WalkResult(moves=walk.moves, exit=fill_exit(final) if final is not None else None, stop=walk.stop,
                        last_checked_at=walk.last_checked_at)
    if not walk.fills and not walk.moves and walk.last_checked_at == op.last_checked_at:
        return _Walk(op, op, result, timeframe, 0, info)  # nothing new: write nothing
    updated = book_walk(walked, walk)
    if walk.fills and not walk.closed or walk.moves and not walk.closed:
        updated = dataclasses.replace(updated, updated_at=now)
    return _Walk(op, updated, result, timeframe, candles_examined(op, candles, timeframe, result), info)


def _book_parts(tx: StoreSession, book: PaperBook, op: Operation, updated: Operation, stop_id: str) -> None:
    """Fill each part the walk took (a LIMIT at its target) and shrink the paper stop to what is still held."""
    for part in updated.parts[len(op.parts):]:
        filled = book.settle_part(tx, stop_id, part.client_order_id, quantity=part.quantity, price=part.price,
                                  fee=part.fee, at=part.at, limit=part.reason is CloseReason.TARGET,
                                  intent_id=op.intent_id)
        held = op.quantity - sum((p.quantity for p in updated.parts[:part.number]), Decimal(0))
        what = f"target {part.target}" if part.target is not None else "part"
        tx.record(AuditEvent(
            at=part.at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
            message=f"{what} {filled.side.value} {fmt(part.quantity)} filled @ {fmt(part.price)} fee "
                    f"{fmt_amount(part.fee)} {op.quote_asset}; {fmt(held)} still held, the stop resized to it",
            data={"client_order_id": part.client_order_id, "part": part.number, "target": part.target,
                  "quantity": fmt(part.quantity), "price": fmt(part.price), "fee": fmt(part.fee),
                  "reason": part.reason.value, "held": fmt(held)},
        ))


def _save(tx: StoreSession, walk: _Walk, book: PaperBook, account: Account) -> OperationCheck:
    """Write one walk: stop moves, the repriced paper stop, any exit; raise _Changed if the operation moved meanwhile."""
    op, result, updated = walk.before, walk.result, walk.after
    if tx.get_operation(op.id) != op:
        raise _Changed(op.id)
    stop_id = client_order_id(op.intent_id, OrderRole.STOP)
    order = None
    if len(updated.parts) > len(op.parts):
        _book_parts(tx, book, op, updated, stop_id)
    if result.moves or result.exit is not None:
        for move in result.moves:
            tx.record(stop_moved_event(op, move, stop_id))
        order = tx.get_order(stop_id)
    if result.moves and order is not None and order.status in OPEN_STATUSES:
        order = book.reprice_stop(tx, stop_id, stop_price=result.stop, target_price=op.target, at=result.moves[-1].at,
                                  limit_price=stop_limit_price(op.side, result.stop, walk.info.round_price,
                                                               account.stop_limit_offset_percent))
    if result.exit is not None:
        taken = dataclasses.replace(op, parts=updated.parts)  # the parts taken before the exit closed the rest
        updated = _settle_exit(tx, book, taken, updated, result.exit, order, stop_id)
    tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
    return OperationCheck(op, updated, walk.timeframe, walk.examined, result.moves, result.exit,
                          parts=updated.parts[len(op.parts):])


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
        filled = book.settle_market_exit(tx, op.symbol, op.side.opposite, op.held, exit_id, price=exit_.price,
                                         fee=exit_.fee, at=exit_.at, cancel=stop_id, intent_id=op.intent_id)
        if (filled.average_price, filled.fee) != (exit_.price, exit_.fee):  # an exit that filled before: its own fill
            closed = op.close(exit_price=filled.average_price, exit_fee=filled.fee, reason=exit_.reason,
                              at=filled.updated_at)
        what = "exit MARKET"
    gap = " (gapped: filled at the candle's open)" if exit_.gapped else ""
    tx.record(AuditEvent(
        at=closed.closed_at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
        message=f"{what} {filled.side.value} {fmt(filled.quantity)} filled @ {fmt(filled.average_price)}{gap} "
                f"fee {fmt_amount(filled.fee)} {op.quote_asset}",
        data={"client_order_id": filled.client_order_id},
    ))
    r = r_multiple(closed)
    tx.record(AuditEvent(
        at=closed.closed_at, kind=AuditKind.CLOSED, intent_id=op.intent_id, operation_id=op.id,
        message=f"closed by the monitor: {exit_.reason.value} @ {fmt(closed.exit_price)}"
                + (f" (the average of {len(op.parts) + 1} exits)" if op.parts else "")
                + f" fee {fmt_amount(closed.exit_fee)}, "
                f"realized P&L {fmt(closed.realized_pnl, 2)} {op.quote_asset}"
                + (f" ({fmt(r, 2)} R)" if r is not None else ""),
        data={"reason": exit_.reason.value, "price": fmt(closed.exit_price), "trigger_price": fmt(exit_.trigger_price),
              "fee": fmt(closed.exit_fee), "realized_pnl": fmt(closed.realized_pnl), "gapped": exit_.gapped,
              "candle_open_time": exit_.candle_open_time, "client_order_id": filled.client_order_id},
    ))
    return closed


def modify_paper(operation_id: str, *, stop: Decimal | None, target: Decimal | None, allow_loosen: bool,
                 store: Store, market: MarketData, book: PaperBook, account: Account, clock: Clock,
                 strategy: Strategy | None, targets: Sequence[LadderStep] | None = None) -> Modification:
    """Move a paper operation's stop or target, or replace its coming targets, after catching up on the candles
    since its last check.

    targets replace the ladder's targets still to come (replace_ladder: priced from the entry and the
    initial stop, sized over what is held, beyond the price now); the operation's target becomes the
    last of them and the paper protective order is repriced to it.

    The catch-up is judged first, so a wick since the last check meets the stop as it stood then: if
    it closed the operation, that close is written and the change refused. Otherwise the catch-up
    (trailing moves, the check time) and the change are written together, in one transaction, and
    only when the change is accepted: a refused modify writes nothing at all.
    """
    with store.read() as session:
        op = session.get_operation(operation_id)
    now = clock.now()
    timeframe, candles = fetch_candles(market, op.symbol, checked_since(op), now)
    walk = _walk(op, candles, timeframe, market=market, book=book, strategy=strategy, now=now)
    caught = walk.check if walk.changed else None
    if walk.result.exit is not None:
        with store.transaction() as tx:
            try:
                _save(tx, walk, book, account)
            except _Changed:
                pass  # another command closed or moved it meanwhile: still_active says which
        still_active(store, op.id)
    walked = walk.after
    change = new_levels(walked, stop=stop, target=target, allow_loosen=allow_loosen, store=store, market=market,
                        account=account, strategy=strategy, now=now)
    updated, price, risk, risk_percent, info = change
    if targets is not None:
        ladder = replace_ladder(updated, targets, info=info, fee_rate=book.fee_rate, price=price)
        updated = dataclasses.replace(updated, ladder=ladder, target=ladder.final.target)
    if updated == dataclasses.replace(walked, updated_at=now) and not walk.changed:
        return Modification(op, op, price, risk, risk_percent, None, caught)
    stop_id = client_order_id(op.intent_id, OrderRole.STOP)
    with store.transaction() as tx:
        try:
            if walk.changed:
                _save(tx, walk, book, account)
            elif tx.get_operation(op.id) != op:
                raise _Changed(op.id)
        except _Changed:
            raise IllegalTransition(f"operation {op.id} changed while it was being modified (the monitor moved or "
                                    "closed it)", hint="look at it with robson operation show, then try again") from None
        order = tx.get_order(stop_id)
        if order is not None and order.status in OPEN_STATUSES:
            order = book.reprice_stop(tx, stop_id, stop_price=updated.stop, target_price=updated.target, at=now,
                                      limit_price=stop_limit_price(op.side, updated.stop, info.round_price,
                                                                   account.stop_limit_offset_percent))
        tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
        if targets is None:
            events = manual_moves(walked, updated, price, stop_id, now)
        else:  # the stop as any modify records it; the targets in one record
            events = manual_moves(walked, dataclasses.replace(updated, target=walked.target), price, stop_id, now)
            events.append(targets_replaced_event(walked, updated, price, stop_id, now))
        for event in events:
            tx.record(event)
    return Modification(walked, updated, price, risk, risk_percent, order, caught)


