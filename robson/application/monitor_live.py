"""Use case: the stop monitor for LIVE operations, where the exchange-side protective order is the truth.

Each tick, for every ACTIVE live operation:
1. an exit at market already begun (an ORDER_SENT record for an exit generation `-X`, `-X1` …) is
   finished first: the stop protecting a rest the book did not take is cancelled and the rest sold;
2. the protective order — the latest generation of the intent's stop id (`-S`, `-S1`, `-S2` …), as
   mirrored in the orders table or as last sent (ORDER_SENT) — is looked up by client id. FILLED
   closes the operation at the exchange's fill and fees (stop leg or OCO target leg);
   PARTIALLY_FILLED is watched, unless it is the target leg (Binance then expired the stop leg: the
   rest of the OCO is cancelled and what is held gets a new stop); CANCELED/EXPIRED/REJECTED or
   unknown to the exchange is placed again at once under the next generation, or the position is
   exited at market if it cannot be;
   An open stop-limit the last price reached or passed its limit (one price per symbol per tick) can
   no longer fill: it is cancelled and the position exited at market;
3. a due time exit cancels the stop and exits at market;
4. trailing: the candles closed since the last check move the stop (robson.domain.monitoring).
   The operation's new stop is written first — it says what the exchange should hold — then the
   order is cancelled and replaced (Binance spot locks the base asset under the resting stop, so
   the new one cannot be placed first). Candles never close a live operation.

Every send is stamped (ORDER_SENT) and every order looked up before it is sent, so a crash at any
step is finished by the next tick without a second protective order; the position is without a
stop only between a cancel and the place that follows it.

Each operation is checked under its own lock (`operation_lock`), which `operation close` and
`operation modify` take too: a busy operation is skipped for this tick, never raced. When a
protective order filled in part before it vanished or was replaced, the close averages every
generation's fills (quantity-weighted, fees summed) and an exit at market sells only what is held.
An exit the book fills only in part never closes the operation: the next exit generation sells the
rest at once (MAX_EXIT_SENDS per check), then what is still held gets a stop and is reported as an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NoReturn

from robson.application.sending import last_send, safe_to_send, send_once
from robson.application.unresolved import CLOSE_IT_YOURSELF
from robson.application.watching import (
    Modification,
    MonitorReport,
    OperationCheck,
    Problem,
    StrategyFor,
    candles_examined,
    strategy_of,
    stop_moved_event,
    fetch_candles,
    loss_halts,
    manual_moves,
    new_levels,
    operation_lock,
    still_active,
)
from robson.application.plan import Account
from robson.application.ports import Clock, Exchange, MarketData, Store
from robson.domain.intent import TradingIntent
from robson.domain.market import Candle, SymbolInfo, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.money import fmt, fmt_amount
from robson.domain.ladder import ladder_for_held, ladder_view, part_order_id, part_quantity, stop_after_part
from robson.domain.lifecycle import stop_limit_price
from robson.domain.monitoring import Exit, MonitorSettings, StopMove, WalkResult, time_exit_deadline, walk_candles
from robson.domain.operation import CloseReason, Operation, OperationStatus, r_multiple
from robson.domain.orders import (
    OPEN_STATUSES,
    AuditEvent,
    AuditKind,
    Order,
    OrderRole,
    OrderStatus,
    client_order_id,
    fee_in_quote,
    order_generation,
    parse_part_order_id,
)
from robson.domain.strategy import Strategy
from robson.errors import (
    AlreadyRunning,
    AnswerLost,
    LeaseLost,
    ExchangeError,
    IllegalTransition,
    InsufficientBalance,
    InvalidInput,
    MarketDataError,
    OrderRejected,
    RobsonError,
    Unprotected,
)

# Closes are reported on the 5m candle of the fill, like the paper walk's finest timeframe.
REPORT_TIMEFRAME = "5m"
GONE_STATUSES = frozenset({OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED})
# An exit at market the book fills only in part is followed at once by the next generation, this many sends per check.
MAX_EXIT_SENDS = 3
BUSY = "being changed by another command; checked next tick"
CHANGED = "changed by another command during the check; checked next tick"


@dataclass(frozen=True, slots=True)
class ExchangeClock:
    """The exchange's own clock: live candles close on it and a lost order's recvWindow is judged by it."""

    exchange: Exchange

    def now(self) -> datetime:
        return ms_to_datetime(self.exchange.send_stamp())


class _LastPrices:
    """The last price of each symbol, asked of the market at most once per tick and only when needed."""

    def __init__(self, market: MarketData) -> None:
        self.market = market
        self.seen: dict[str, Decimal | RobsonError] = {}

    def of(self, symbol: str) -> Decimal:
        """Return the symbol's last price this tick; raise the RobsonError its first request raised."""
        if symbol not in self.seen:
            try:
                self.seen[symbol] = self.market.last_price(symbol).price
            except RobsonError as e:
                self.seen[symbol] = e
        value = self.seen[symbol]
        if isinstance(value, RobsonError):
            raise value
        return value


class _Changed(Exception):
    """The operation changed in the store while it was being checked."""


class _Closed(Exception):
    """The operation was closed during its check; carries the check to report."""

    def __init__(self, check: OperationCheck) -> None:
        super().__init__(check.operation.id)
        self.check = check


# --- which order protects an operation ---------------------------------------------------------


def stop_generation(intent_id: str, order_id: str) -> int | None:
    """Return the generation of one of the intent's stop ids (`-S` is 0, `-S2` is 2), None for another id."""
    return order_generation(intent_id, OrderRole.STOP, order_id)


def latest_order_id(store: Store, intent_id: str, role: OrderRole) -> str:
    """Return the client id of the intent's latest generation of role (stop or exit), stored or sent."""
    with store.read() as session:
        ids = [order.client_order_id for order in session.orders_for_intent(intent_id)]
        ids += [e.data.get("client_order_id") or "" for e in session.audit_trail(intent_id=intent_id)
                if e.kind is AuditKind.ORDER_SENT]
    generations = [g for g in (order_generation(intent_id, role, i) for i in ids) if g is not None]
    return client_order_id(intent_id, role, max(generations, default=0))


def protective_order_id(store: Store, intent_id: str) -> str:
    """Return the client id of the intent's current protective order: its latest stop generation, stored or sent."""
    return latest_order_id(store, intent_id, OrderRole.STOP)


def part_order_ids(store: Store, op: Operation) -> dict[int, str]:
    """Return, for each part of a live ladder protected part by part, the client id of its latest OCO generation
    (`-P<i>S`, `-P<i>S1` …), stored or sent; empty when the operation's parts have no orders of their own."""
    if op.ladder is None:
        return {}
    with store.read() as session:
        ids = [order.client_order_id for order in session.orders_for_intent(op.intent_id)]
        ids += [e.data.get("client_order_id") or "" for e in session.audit_trail(intent_id=op.intent_id)
                if e.kind is AuditKind.ORDER_SENT]
    latest: dict[int, int] = {}
    for order_id in ids:
        parsed = parse_part_order_id(op.intent_id, order_id)
        if parsed is not None and parsed[1] is OrderRole.STOP:
            latest[parsed[0]] = max(latest.get(parsed[0], 0), parsed[2])
    if not latest:
        return {}
    return {part.number: client_order_id(op.intent_id, OrderRole.STOP, latest.get(part.number, 0), part=part.number)
            for part in op.ladder.parts if part.quantity > 0}


def live_operations(store: Store) -> list[Operation]:
    """Return the ACTIVE operations whose orders are on a real exchange (one query)."""
    with store.read() as session:
        return [op for op in session.list_operations(OperationStatus.ACTIVE) if op.mode != "paper"]


# --- one tick ---------------------------------------------------------------------------------


def live_monitor_once(*, store: Store, exchange: Exchange, market: MarketData, account: Account,
                      strategy_for: StrategyFor, clock: Clock | None = None) -> MonitorReport:
    """Check every ACTIVE live operation once against its protective order on the exchange."""
    clock = clock or ExchangeClock(exchange)
    now = clock.now()
    operations = live_operations(store)
    checks: list[OperationCheck] = []
    skipped: list[Problem] = []
    errors: list[Problem] = []
    strategies = {op.id: strategy_of(op, strategy_for, errors) for op in operations}
    candles = _candles_for_trailing(operations, strategies, market, now)
    prices = _LastPrices(market)  # one price request per symbol per tick, shared by its operations
    for op in operations:
        try:
            # `operation close` / `modify` hold this lock while they change the operation: never race them.
            with operation_lock(store, op.id, wait_seconds=0):
                with store.read() as session:
                    current = session.get_operation(op.id)
                if current != op:  # closed or modified since the tick listed it
                    skipped.append(Problem(op.id, CHANGED))
                    continue
                watch = _Watch(op, store=store, exchange=exchange, market=market, account=account, clock=clock,
                               strategy=strategies[op.id], candles=candles.get(op.symbol), now=now, prices=prices)
                checks.append(watch.run())
        except AlreadyRunning:
            skipped.append(Problem(op.id, BUSY))
        except _Changed:
            skipped.append(Problem(op.id, CHANGED))
        except LeaseLost:  # the monitor's own lock: no other operation may be touched either
            raise
        except RobsonError as e:
            errors.append(Problem(op.id, str(e) + (f" ({e.hint})" if e.hint else "")))
    halts = loss_halts(store, account, now) if any(c.closed for c in checks) else []
    return MonitorReport(now, tuple(checks), tuple(skipped), tuple(errors), tuple(halts))


def check_live_operation(op: Operation, *, store: Store, exchange: Exchange, market: MarketData, account: Account,
                         strategy: Strategy | None, clock: Clock | None = None) -> OperationCheck:
    """Check one ACTIVE live operation now; the caller holds its operation_lock. Raise RobsonError if it fails."""
    clock = clock or ExchangeClock(exchange)
    now = clock.now()
    candles = _candles_for_trailing([op], {op.id: strategy}, market, now)
    try:
        return _Watch(op, store=store, exchange=exchange, market=market, account=account, clock=clock,
                      strategy=strategy, candles=candles.get(op.symbol), now=now).run()
    except _Changed:
        raise RobsonError(f"operation {op.id} changed while it was being checked", hint="try again") from None


def close_live_by_hand(op: Operation, *, store: Store, exchange: Exchange, market: MarketData, account: Account,
                       strategy: Strategy | None, clock: Clock | None = None) -> Operation:
    """Close a live operation at market: cancel its protective order (whatever generation), sell what is held.

    If the protective order filled meanwhile, the operation closes at that fill (stop or target) and
    nothing more is sold. The caller holds the operation_lock. Raise AnswerLost while an earlier send
    could still arrive, ExchangeError if the exit fails or sells only part (the rest then has a stop
    and the operation stays ACTIVE).
    """
    clock = clock or ExchangeClock(exchange)
    watch = _Watch(op, store=store, exchange=exchange, market=market, account=account, clock=clock,
                   strategy=strategy, candles=None, now=clock.now(), closer="by hand")
    try:
        watch.close_by_hand()
    except _Closed as closed:
        return closed.check.operation
    except _Changed:
        raise RobsonError(f"operation {op.id} changed while it was being closed", hint="try again") from None
    raise AssertionError("close_by_hand always closes")  # pragma: no cover


def close_live_part(op: Operation, part: str, *, store: Store, exchange: Exchange, market: MarketData,
                    account: Account, strategy: Strategy | None, clock: Clock | None = None) -> Operation:
    """Close a part of a live operation protected part by part at market ('50%' of what is held, or a quantity).

    The check runs first (a fill meanwhile is booked). The ladder's coming parts are re-sized to what
    will be held (ladder_for_held) and their OCOs reduced in place to it (keepPriority: never off the
    book), a part merged away is cancelled; that frees the base the MARKET sell (`-P<n>`, looked up
    before it is sent) needs; its fill is booked as a part with the re-sized ladder. The caller holds
    the operation_lock. Raise InvalidInput for a bad part or an operation not protected part by part,
    IllegalTransition if it closed meanwhile, ExchangeError if the sell failed (the next check gives each
    part its OCO back for what it holds).
    """
    clock = clock or ExchangeClock(exchange)
    watch = _Watch(op, store=store, exchange=exchange, market=market, account=account, clock=clock,
                   strategy=strategy, candles=None, now=clock.now(), closer="by hand")
    if not watch.by_parts:
        raise InvalidInput(f"operation {op.id} is live with one protective order: --part closes a live operation "
                           "protected part by part (a ladder of targets) only in this release",
                           hint="close all of it with robson operation close, without --part")
    try:
        watch.close_part_by_hand(part)
    except _Closed as closed:
        done = closed.check.operation
        raise IllegalTransition(f"operation {done.id} closed meanwhile ({done.close_reason.value if done.close_reason else done.status.value}); nothing more was sold",
                                hint=f"look at it with robson operation show {done.id}") from None
    except _Changed:
        raise RobsonError(f"operation {op.id} changed while a part was being closed", hint="try again") from None
    return watch.op


def exit_live_at_market(op: Operation, reason: CloseReason, why: str, *, store: Store, exchange: Exchange,
                        market: MarketData, account: Account, strategy: Strategy | None, closer: str,
                        clock: Clock | None = None) -> Operation:
    """Sell (buy back) what an ACTIVE live operation holds at market, under its exit generations; return it CLOSED.

    For a position with no protective order (the caller holds the operation_lock). Raise ExchangeError
    when the book takes only part (the rest then gets a stop if one can be placed, and the operation
    stays ACTIVE for the monitor), AnswerLost while an earlier send could still arrive.
    """
    clock = clock or ExchangeClock(exchange)
    watch = _Watch(op, store=store, exchange=exchange, market=market, account=account, clock=clock,
                   strategy=strategy, candles=None, now=clock.now(), closer=closer)
    try:
        watch._exit_at_market(reason, why)
    except _Closed as closed:
        return closed.check.operation
    except _Changed:
        raise RobsonError(f"operation {op.id} changed while it was being exited", hint="try again") from None


def modify_live(operation_id: str, *, stop: Decimal | None, target: Decimal | None, allow_loosen: bool, store: Store,
                exchange: Exchange, market: MarketData, account: Account, strategy: Strategy | None,
                clock: Clock | None = None) -> Modification:
    """Move a live operation's stop/target and replace its protective order; the caller holds its operation_lock.

    The exchange is checked first (a fill closes the operation: IllegalTransition). The new levels
    are written with a STOP_MOVED record naming the order's next generation, then one check cancels
    and replaces the order. If the replace fails the change stays written and the error is raised:
    the next monitor tick finishes the replace from the same records, never doubling the order.
    """
    clock = clock or ExchangeClock(exchange)
    with store.read() as session:
        op = session.get_operation(operation_id)
    caught = check_live_operation(op, store=store, exchange=exchange, market=market, account=account,
                                  strategy=strategy, clock=clock)
    op = still_active(store, op.id)
    if part_order_ids(store, op):
        raise IllegalTransition(f"operation {op.id} is protected part by part (one OCO per target of its ladder): "
                                "moving its stop or target by hand is not supported live in this release",
                                hint="its stop follows the strategy's rule after each target; close it with "
                                     "robson operation close if it must change")
    now = clock.now()
    updated, price, risk, risk_percent, _ = new_levels(op, stop=stop, target=target, allow_loosen=allow_loosen,
                                                       store=store, market=market, account=account,
                                                       strategy=strategy, now=now)
    if updated == dataclasses.replace(op, updated_at=now):
        return Modification(op, op, price, risk, risk_percent, None, caught)
    order_id = protective_order_id(store, op.intent_id)
    next_id = client_order_id(op.intent_id, OrderRole.STOP, (stop_generation(op.intent_id, order_id) or 0) + 1)
    with store.transaction() as tx:
        if tx.get_operation(op.id) != op:
            raise IllegalTransition(f"operation {op.id} changed while it was being modified",
                                    hint="look at it with robson operation show, then try again")
        tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
        for event in manual_moves(op, updated, price, order_id, now, new_stop_id=next_id):
            tx.record(event)
    try:
        check_live_operation(updated, store=store, exchange=exchange, market=market, account=account,
                             strategy=strategy, clock=clock)
    except RobsonError as e:
        raise ExchangeError(f"the new levels of {op.id} are saved, but replacing {order_id} on "
                            f"{exchange.name.capitalize()} failed: {e}",
                            hint="the next `robson monitor` tick finishes the replace; nothing is placed twice"
                            ) from None
    order_id = protective_order_id(store, op.intent_id)
    with store.read() as session:
        after = session.get_operation(op.id)  # closed if the price was already through the new stop
        order = session.get_order(order_id)
    return Modification(op, after, price, risk, risk_percent, order, caught)


def _candles_for_trailing(operations: list[Operation], strategies: dict[str, Strategy | None], market: MarketData,
                          now: datetime) -> dict[str, tuple[str, list[Candle]] | MarketDataError]:
    """Fetch candles once per symbol, only for symbols with a trailing operation."""
    trailing = [op for op in operations if strategies[op.id] is not None and strategies[op.id].trails]
    fetched: dict[str, tuple[str, list[Candle]] | MarketDataError] = {}
    for symbol in sorted({op.symbol for op in trailing}):
        since = min(op.last_checked_at or op.opened_at for op in trailing if op.symbol == symbol)
        try:
            fetched[symbol] = fetch_candles(market, symbol, since, now)
        except MarketDataError as e:
            fetched[symbol] = e
    return fetched


def unwatched(operations: Iterable[Operation], reason: str, at: datetime) -> MonitorReport:
    """Return a report with an error for each live operation that could not be checked at all."""
    return MonitorReport(at, (), errors=tuple(Problem(op.id, reason) for op in operations))


def merge_reports(paper: MonitorReport, live: MonitorReport) -> MonitorReport:
    """Return one report for a tick: the paper checks, then the live ones."""
    skipped = paper.skipped + live.skipped
    # The later of the two loss checks saw every close of this tick.
    halts = live.halts if live.closed else paper.halts
    return MonitorReport(paper.at, paper.checks + live.checks, skipped, paper.errors + live.errors, halts)


# --- one operation ------------------------------------------------------------------------------


class _Watch:
    """One live operation's check: what the exchange shows, and what robson does about it."""

    def __init__(self, op: Operation, *, store: Store, exchange: Exchange, market: MarketData, account: Account,
                 clock: Clock, strategy: Strategy | None, candles: tuple[str, list[Candle]] | MarketDataError | None,
                 now: datetime, closer: str = "by the monitor", prices: _LastPrices | None = None) -> None:
        self.before = self.op = op
        self.closer = closer
        self.store, self.exchange, self.market, self.account, self.clock = store, exchange, market, account, clock
        self.strategy, self.candles, self.now = strategy, candles, now
        self.prices = prices or _LastPrices(market)
        self.exiting = False  # set while selling at market: a stop that cannot protect the rest is then an error
        self.notes: list[str] = []
        self.moves: tuple[StopMove, ...] = ()
        self.timeframe, self.examined = "", 0
        with store.read() as session:
            self.intent: TradingIntent = session.get_intent(op.intent_id)
        self.info: SymbolInfo = market.symbol_info(op.symbol)
        self.by_parts = bool(part_order_ids(store, op))  # a ladder with one OCO per part (execute placed them)

    def run(self) -> OperationCheck:
        try:
            self._check()
        except _Closed as closed:
            return closed.check
        return self._report(None)

    def close_by_hand(self) -> None:
        """Close now (raises _Closed): at the protective order's fill if it filled, else cancel it and exit.

        Raise ExchangeError when the book takes only part: the rest then has a stop and stays ACTIVE.
        """
        self._finish_exit()
        self._end_protection()
        self._exit_at_market(CloseReason.MANUAL, "closed by hand")

    def _end_protection(self) -> None:
        """Cancel the open protective order before an exit at market; close at its fill if it filled.

        A ladder's part OCOs are all cancelled, what any of them filled booked first as its part.
        """
        if self.by_parts:
            for number, order_id in part_order_ids(self.store, self.op).items():
                if self._part_left(number) <= 0:
                    continue
                order = self._settle_part(number, self._look_up(order_id))
                if order is not None and order.status in OPEN_STATUSES:
                    self._cancel(order)
            rest_id = protective_order_id(self.store, self.op.intent_id)
            if not self._stored(rest_id) and self._last_send(rest_id) is None:
                return  # no stop for a rest an exit left: nothing more to end
        order = self._look_up(protective_order_id(self.store, self.op.intent_id))
        if order is not None and order.status is OrderStatus.FILLED:
            self._close_filled(order)
        if order is not None and order.status in OPEN_STATUSES:
            self._cancel(order)

    def _finish_exit(self) -> None:
        """Finish an exit at market begun before: a crash, a lost answer, or a rest the book did not take."""
        if self.by_parts:
            self._finish_part_close()
            self._finish_part_sells()
        exit_id = latest_order_id(self.store, self.op.intent_id, OrderRole.EXIT)
        exit_sent = self._last_send(exit_id)
        if exit_sent is None:
            return
        if self.exchange.get_order(self.op.symbol, exit_id) is None:
            # Raise AnswerLost while that send could still arrive, before the rest's stop is cancelled.
            safe_to_send(self.store, self.exchange, self.intent, exit_id, "exit order")
        reason = CloseReason(exit_sent.data.get("reason", CloseReason.MANUAL.value))
        self._end_protection()  # the stop that protected the rest since the last check
        self._exit_at_market(reason, exit_sent.data.get("why", "an exit at market was already sent"))

    def _check(self) -> None:
        self._finish_exit()
        if self.by_parts:
            self._check_parts()
            return
        order_id = protective_order_id(self.store, self.op.intent_id)
        order = self._look_up(order_id)
        if order is not None and order.status is OrderStatus.FILLED:
            self._close_filled(order)
        if order is not None and order.status in OPEN_STATUSES and not self._at_target(order):
            self._exit_if_stranded(order)
        deadline = self._time_exit_deadline()
        if deadline is not None and self.now >= deadline:
            if order is not None and order.status in OPEN_STATUSES:
                self._cancel(order)
            self._exit_at_market(CloseReason.TIME_EXIT, f"time exit due at {deadline:%Y-%m-%d %H:%M} UTC")
        if order is not None and order.status is OrderStatus.PARTIALLY_FILLED and self._at_target(order):
            # The take-profit filled in part: Binance expired the OCO's stop leg at that first fill, so the rest
            # rests under a take-profit only. End it and protect what is held with a new stop (and target).
            order = self._cancel(order)
        if order is None or order.status in GONE_STATUSES:
            order = self._replace_vanished(order_id, order)
        if order.status is OrderStatus.PARTIALLY_FILLED:
            self.notes.append(f"{order_id} is partially filled ({fmt(order.filled_quantity)} of "
                              f"{fmt(order.quantity)}): watching it")
            return
        self._trail(order.client_order_id)
        if not self._matches(order):  # a move written by this tick or by one that crashed before replacing
            self._replace(order)

    # --- a ladder protected part by part ----------------------------------------------------------

    def _check_parts(self) -> None:
        """Check each part's OCO: book its fills, re-place it if it vanished, move it to the operation's stop.

        After the check every part still held rests under one open OCO for exactly what it holds, at the
        operation's stop and the part's own target: held == protected.
        """
        orders: dict[int, Order | None] = {}
        for number, order_id in part_order_ids(self.store, self.op).items():
            if self._part_left(number) > 0:
                orders[number] = self._settle_part(number, self._look_up(order_id))
        deadline = self._time_exit_deadline()
        if deadline is not None and self.now >= deadline:
            self._exit_at_market(CloseReason.TIME_EXIT, f"time exit due at {deadline:%Y-%m-%d %H:%M} UTC")
        for order in orders.values():
            if order is not None and order.status in OPEN_STATUSES and not self._at_target(order):
                self._exit_if_stranded(order)
        for number in orders:
            order, sends = orders[number], 0
            while self._part_left(number) > 0 and (order is None or order.status not in OPEN_STATUSES):
                if sends == MAX_EXIT_SENDS:  # a thin book sold only some of the part, each time
                    raise ExchangeError(f"part {number} of {self.op.id} still holds {fmt(self._part_left(number))} "
                                        "after its sells at market; the next check tries again")
                order = self._replace_vanished_part(number, part_order_ids(self.store, self.op)[number], order)
                sends += 1
            orders[number] = order
        self._trail(None)
        for number, order in orders.items():
            if self._part_left(number) <= 0 or order is None:
                continue
            if order.status is OrderStatus.PARTIALLY_FILLED:
                self.notes.append(f"{order.client_order_id} is partially filled ({fmt(order.filled_quantity)} of "
                                  f"{fmt(order.quantity)}): watching it")
                continue
            left = self._part_left(number)
            if order.stop_price != self.op.stop or order.target_price != self._part_target(number) \
                    or order.quantity < left:  # a part re-sized by an interrupted `close --part`: protect it all
                self._move_part(number, order)
            elif order.quantity > left:  # its share of a part closed by hand: reduce it where it rests
                self.store.ensure_locks()
                self._mirror(self.exchange.reduce_order(self.op.symbol, order.client_order_id, left))

    def close_part_by_hand(self, text: str) -> None:
        """Reduce the coming parts' OCOs to what will be held, sell the part at market and book it (see close_live_part)."""
        self._check()
        op, info = self.op, self.info
        held = self._held()
        quantity = part_quantity(text, held, info, self.prices.of(op.symbol))
        ids = part_order_ids(self.store, op)
        if any(self._part_left(n) != op.ladder.parts[n - 1].quantity for n in ids if self._part_left(n) > 0):
            raise InvalidInput(f"a part of {op.id} filled only in part: --part cannot re-size its ladder now",
                               hint="close all of it with robson operation close, without --part")
        sizes = ladder_for_held(op.ladder, op.reached, held - quantity, info).parts
        for number, order_id in ids.items():
            if self._part_left(number) <= 0:
                continue
            order = self._settle_part(number, self._look_up(order_id))
            if order is None or order.status not in OPEN_STATUSES or order.filled_quantity > 0 or self.op != op:
                raise ExchangeError(f"{order_id} changed on {self.exchange.name.capitalize()} meanwhile: nothing "
                                    "was sold; the next check protects each part again", hint="try again")
            size = sizes[number - 1].quantity
            if size == 0:
                self._cancel(order)
            elif size < order.quantity:
                self.store.ensure_locks()
                self._mirror(self.exchange.reduce_order(op.symbol, order_id, size))
        order_id = part_order_id(op)
        sold = self.exchange.get_order(op.symbol, order_id)
        if sold is None:
            safe_to_send(self.store, self.exchange, self.intent, order_id, "part sold by hand")
            try:
                sold = self._send_once(order_id, f"part MARKET {op.side.opposite.value} {fmt(quantity)} {op.symbol} "
                                       f"({order_id}): closed by hand", lambda: self.exchange.place_market_order(
                                           op.symbol, op.side.opposite, quantity, order_id, intent_id=op.intent_id),
                                       part_close=fmt(quantity))
            except (OrderRejected, InsufficientBalance) as e:
                self._check_parts()  # each part gets its OCO back for what it holds
                raise ExchangeError(f"the part {order_id} was refused: {e}; nothing was sold, every part is "
                                    "protected as before") from None
        self._book_hand_part(sold)
        self._check_parts()  # a part the book filled only in part: the OCOs follow what is held

    def _finish_part_close(self) -> None:
        """Book a part sold by hand that an interrupted `close --part` did not (it sent its MARKET order last)."""
        order_id = part_order_id(self.op)
        if self._last_send(order_id) is None:
            return
        sold = self.exchange.get_order(self.op.symbol, order_id)
        if sold is None:
            # Raise AnswerLost while it could still arrive; once it cannot, it never sold: the OCOs protect it all.
            safe_to_send(self.store, self.exchange, self.intent, order_id, "part sold by hand")
            return
        self._book_hand_part(sold)

    def _book_hand_part(self, sold: Order) -> None:
        """Book a MARKET part sold by hand at its fill and fee, re-sizing the ladder's coming parts to what is held."""
        op, info = self.op, self.info
        if sold.status in OPEN_STATUSES:
            self._mirror(sold)
            raise ExchangeError(f"the part {sold.client_order_id} is still {sold.status.value}; the next check "
                                "looks at it again")
        if not sold.filled_quantity:
            self._mirror(sold)
            return
        if sold.filled_quantity >= self._held():
            self._close(sold, CloseReason.MANUAL, None, "part MARKET", "")
        fee = fee_in_quote(sold, info)
        updated = op.take_part(quantity=sold.filled_quantity, price=sold.average_price, fee=fee,
                               reason=CloseReason.MANUAL, at=sold.updated_at, client_order_id=sold.client_order_id)
        updated = dataclasses.replace(updated, ladder=ladder_for_held(op.ladder, op.reached, updated.held, info))
        with self.store.transaction() as tx:
            if tx.get_operation(op.id) != op:
                raise _Changed(op.id)
            self._mirror_in(tx, sold)
            tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
            tx.record(AuditEvent(
                at=sold.updated_at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
                message=f"part closed by hand: MARKET {sold.side.value} {fmt(sold.filled_quantity)} filled @ "
                        f"{fmt(sold.average_price)} fee {fmt_amount(fee)} {op.quote_asset} ({sold.client_order_id}); "
                        f"{fmt(updated.held)} still held, each coming part's OCO resized to its share",
                data={"client_order_id": sold.client_order_id, "part": len(updated.parts),
                      "quantity": fmt(sold.filled_quantity), "price": fmt(sold.average_price), "fee": fmt(fee),
                      "reason": "manual", "held": fmt(updated.held)}))
        self.op = updated

    def _part_of(self, order_id: str) -> int | None:
        """The ladder part whose order order_id is (its OCO, or its sell at market), None for a whole-position order."""
        parsed = parse_part_order_id(self.op.intent_id, order_id) if self.by_parts else None
        return parsed[0] if parsed is not None and parsed[1] in (OrderRole.STOP, OrderRole.EXIT) else None

    def _part_sell_id(self, number: int) -> str:
        """The id of the part's next sell at market (`-P<i>X`, `-P<i>X1` …): the latest sent, unless it was booked."""
        op = self.op
        with self.store.read() as session:
            sent = [e.data.get("client_order_id") or "" for e in session.audit_trail(intent_id=op.intent_id)
                    if e.kind is AuditKind.ORDER_SENT]
        generations = [parsed[2] for parsed in (parse_part_order_id(op.intent_id, i) for i in sent)
                       if parsed is not None and parsed[:2] == (number, OrderRole.EXIT)]
        order_id = client_order_id(op.intent_id, OrderRole.EXIT, max(generations, default=0), part=number)
        with self.store.read() as session:
            done = session.get_order(order_id)
        if done is not None and done.status not in OPEN_STATUSES:  # it sold what it could (booked if anything)
            order_id = client_order_id(op.intent_id, OrderRole.EXIT, max(generations) + 1, part=number)
        return order_id

    def _finish_part_sells(self) -> None:
        """Book a part's sell at market that an interrupted check sent but did not book."""
        for number in part_order_ids(self.store, self.op):
            order_id = self._part_sell_id(number)
            if self._part_left(number) > 0 and self._last_send(order_id) is not None:
                sold = self.exchange.get_order(self.op.symbol, order_id)
                if sold is None:
                    safe_to_send(self.store, self.exchange, self.intent, order_id, "part sold at market")
                elif sold.status not in OPEN_STATUSES:
                    self._settle_part(number, sold)
                    self._mirror(sold)

    def _sell_part(self, number: int, why: str) -> Order:
        """Sell what a part holds at market where its target is already reached (its OCO cannot rest there), as
        that target's fill; return the sell. Raise ExchangeError if Binance shows it still open."""
        op = self.op
        order_id = self._part_sell_id(number)
        sold = self.exchange.get_order(op.symbol, order_id)
        if sold is None:
            safe_to_send(self.store, self.exchange, self.intent, order_id, "part sold at market")
            quantity = self._part_left(number)
            try:
                sold = self._send_once(order_id, f"part {number}: MARKET {op.side.opposite.value} {fmt(quantity)} "
                                       f"{op.symbol} ({order_id}): {why}", lambda: self.exchange.place_market_order(
                                           op.symbol, op.side.opposite, quantity, order_id, intent_id=op.intent_id))
            except (OrderRejected, InsufficientBalance) as e:  # that part has no OCO: exit all of it at market
                self._exit_instead(CloseReason.STOP_PLACEMENT_FAILED, f"{why}; its sell {order_id} was refused: {e}")
        self._mirror(sold)
        if sold.status in OPEN_STATUSES:
            raise ExchangeError(f"the part's sell {order_id} is still {sold.status.value}; the next check looks again")
        self._settle_part(number, sold)
        return sold

    def _part_target(self, number: int) -> Decimal:
        return self.op.ladder.parts[number - 1].target

    def _part_left(self, number: int) -> Decimal:
        """What the part still holds: its quantity in the ladder less what its OCOs' fills booked."""
        booked = sum((p.quantity for p in self.op.parts if self._part_of(p.client_order_id or "") == number), Decimal(0))
        return self.op.ladder.parts[number - 1].quantity - booked

    def _settle_part(self, number: int, order: Order | None) -> Order | None:
        """Book what a part's OCO filled, once; a take-profit filled in part is cancelled first (Binance expired
        its stop leg at that fill) so that the part's rest gets an OCO of its own. Return the order as it ends."""
        if order is None:
            return None
        if order.status is OrderStatus.PARTIALLY_FILLED and self._at_target(order):
            self.store.ensure_locks()
            try:
                order = self.exchange.cancel_order(self.op.symbol, order.client_order_id)
            except OrderRejected:
                order = self.exchange.get_order(self.op.symbol, order.client_order_id) or order
            if order.status in OPEN_STATUSES:
                raise ExchangeError(f"cancelling {order.client_order_id} did not take: still {order.status.value}; "
                                    "the next check tries again")
            self._mirror(order)
        if order.status not in OPEN_STATUSES and order.filled_quantity > 0 and not any(
                p.client_order_id == order.client_order_id for p in self.op.parts):
            self._book_part(number, order)
        return order

    def _book_part(self, number: int, order: Order) -> None:
        """Book a part's fill at Binance's price and commission; after its target, move the stop by the rule.

        The part, the stop the remaining OCOs must now hold and the records are written in one
        transaction: the OCOs are moved after it (this tick or, after a crash, the next), from it.
        The fill that sells the last of the position closes the operation instead (raises _Closed).
        """
        op, info = self.op, self.info
        sold = parse_part_order_id(op.intent_id, order.client_order_id)[1] is OrderRole.EXIT  # its target was reached
        at_target = sold or self._at_target(order)
        reason = CloseReason.TARGET if at_target else self._stop_reason(order.stop_price)
        what = f"part {number}: " + ("MARKET at its target" if sold else "target leg" if at_target else "stop")
        if order.filled_quantity >= self._held():
            self._close(order, reason, order.target_price if at_target else order.stop_price, what, "")
        fee = fee_in_quote(order, info)
        updated = op.take_part(quantity=order.filled_quantity, price=order.average_price, fee=fee, reason=reason,
                               at=order.updated_at, client_order_id=order.client_order_id,
                               target=number if at_target else None,
                               reached=max(op.reached, number) if at_target else None)
        events = [AuditEvent(
            at=order.updated_at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
            message=f"{what} {order.side.value} {fmt(order.filled_quantity)} filled @ {fmt(order.average_price)} fee "
                    f"{fmt_amount(fee)} {op.quote_asset} ({order.client_order_id}): part {number} taken, "
                    f"{fmt(updated.held)} {info.base_asset} still held",
            data={"client_order_id": order.client_order_id, "part": number, "quantity": fmt(order.filled_quantity),
                  "price": fmt(order.average_price), "fee": fmt(fee), "held": fmt(updated.held)})]
        self.op = updated
        if at_target and self._part_left(number) <= 0:
            part = op.ladder.parts[number - 1]
            stop = stop_after_part(ladder_view(op), op.ladder, part, op.stop, fee_rate=self.account.fee_rate,
                                   tick_size=info.tick_size)
            if stop != op.stop:
                updated = dataclasses.replace(updated, stop=stop)
                length = timeframe_ms(REPORT_TIMEFRAME)
                self.moves += (StopMove(order.updated_at, op.stop, stop, part.step.then_stop.value,
                                        datetime_to_ms(order.updated_at) // length * length, order.average_price),)
                events.append(AuditEvent(
                    at=order.updated_at, kind=AuditKind.STOP_MOVED, intent_id=op.intent_id, operation_id=op.id,
                    message=f"stop moved {fmt(op.stop)} → {fmt(stop)} ({part.step.then_stop.describe()} after "
                            f"target {number}); each remaining part's OCO is replaced by its next generation",
                    data={"old_stop": fmt(op.stop), "new_stop": fmt(stop), "reason": part.step.then_stop.value,
                          "best_price": fmt(order.average_price), "client_order_id": order.client_order_id}))
        with self.store.transaction() as tx:
            if tx.get_operation(op.id) != op:
                raise _Changed(op.id)
            self._mirror_in(tx, order)
            tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
            for event in events:
                tx.record(event)
        self.op = updated
        self.notes.extend(e.message for e in events)

    def _replace_vanished_part(self, number: int, order_id: str, order: Order | None) -> Order:
        """Place a part's OCO again under its next generation (the same one if it never reached Binance)."""
        generation = parse_part_order_id(self.op.intent_id, order_id)[2]
        left = self._part_left(number)
        if order is None and self._last_send(order_id) is not None and not self._stored(order_id):
            return self._place(generation, f"{order_id} never reached {self.exchange.name.capitalize()}", left,
                               previous=order_id, part=number)
        state = "unknown to" if order is None else f"{order.status.value} on"
        why = f"{order_id} was {state} {self.exchange.name.capitalize()}"
        if order is not None and self._moving_part(order_id):
            why = f"{order_id} was cancelled to move the stop"
        return self._place(generation + 1, why, left, previous=order_id, part=number)

    def _moving_part(self, order_id: str) -> bool:
        """True when this operation's stop differs from the part OCO's: robson cancelled it to move it."""
        with self.store.read() as session:
            stored = session.get_order(order_id)
        return stored is not None and stored.stop_price != self.op.stop

    def _move_part(self, number: int, order: Order) -> None:
        """Move a part's OCO to the operation's stop, keeping its target: cancel it, then place the next generation.

        Binance has no replace for an order list: the part is without a stop for one round trip, as a
        trailing move is. The new OCO's send is recorded after the cancel, so a crash between the two
        is finished by the next check at once (the old one is then CANCELED: placed again).
        """
        old_id = order.client_order_id
        after = self._cancel(order)
        if self._part_left(number) <= 0:
            return  # it filled meanwhile and was booked
        generation = parse_part_order_id(self.op.intent_id, part_order_ids(self.store, self.op)[number])[2] + 1
        moved = (f"stop moved {fmt(order.stop_price)} → {fmt(self.op.stop)}: {old_id} cancelled"
                 if after is not None else f"{old_id} vanished")
        self._place(generation, moved, self._part_left(number), previous=old_id, part=number)

    # --- reading the exchange -----------------------------------------------------------------

    def _look_up(self, order_id: str) -> Order | None:
        """Return the order as the exchange shows it (mirrored into the store), None if it never arrived."""
        order = self.exchange.get_order(self.op.symbol, order_id)
        stored = self._stored(order_id)
        if order is None:
            if not stored:
                # Sent but not seen: an earlier send may still arrive; nothing is sent until it no longer can.
                try:
                    safe_to_send(self.store, self.exchange, self.intent, order_id, "protective stop")
                except AnswerLost as e:
                    raise Unprotected(f"UNPROTECTED: {fmt(self._held())} {self.info.base_asset} held and its "
                                      f"protective stop is not on {self.exchange.name.capitalize()} yet: {e}",
                                      hint="the next check places it once the lost one can no longer arrive "
                                           f"(never twice); {CLOSE_IT_YOURSELF}", cause=e) from None
            return None
        if stored:
            self._mirror(order)
        else:  # placed by a run that stopped before writing it down: adopt it
            self._adopt(order, "found on the exchange after an interrupted check", previous=None)
        return order

    def _exit_if_stranded(self, order: Order) -> None:
        """Exit at market when the price is at or past the stop-limit's limit: the limit can no longer fill."""
        if order.price is None:
            return
        try:
            price = self.prices.of(self.op.symbol)
        except RobsonError as e:
            self.notes.append(f"no price, so {order.client_order_id} was not checked against its limit: {e}")
            return
        if (price - order.price) * self.op.side.sign > 0:
            return  # above a sell stop's limit (below a buy stop's): a triggered stop-limit can still fill
        why = f"stop-limit stranded: price {fmt(price)} is past its limit {fmt(order.price)}; exited at market"
        self._cancel(order)  # it may have filled meanwhile: the operation then closes at that fill
        self._exit_at_market(self._stop_reason(order.stop_price), why)

    def _matches(self, order: Order) -> bool:
        return order.stop_price == self.op.stop and order.target_price == self.op.target

    def _time_exit_deadline(self) -> datetime | None:
        if self.strategy is None or self.strategy.time_exit is None:
            return None
        return time_exit_deadline(self.op.opened_at, self.strategy.timeframe, self.strategy.time_exit)

    # --- replacing the protective order ---------------------------------------------------------

    def _replace_vanished(self, order_id: str, order: Order | None) -> Order:
        """Place the stop again under the next generation; exit at market if it cannot be placed."""
        state = "unknown to" if order is None else f"{order.status.value} on"
        why = f"{order_id} was {state} {self.exchange.name.capitalize()}"
        if self._moving(order_id):
            why = f"{order_id} was cancelled to move the stop"
        elif order is None and self._last_send(order_id) is not None and not self._stored(order_id):
            # Sent, never seen, and Binance can no longer accept it (checked in _look_up): send it once more.
            return self._place(stop_generation(self.op.intent_id, order_id) or 0, f"{order_id} never reached "
                               f"{self.exchange.name.capitalize()}", self._held(), previous=order_id)
        filled = order.filled_quantity if order is not None else Decimal(0)
        quantity = self._held()
        if filled:
            why += f" after filling {fmt(filled)}; the rest ({fmt(quantity)}) needs a stop of its own"
        generation = (stop_generation(self.op.intent_id, order_id) or 0) + 1
        return self._place(generation, why, quantity, previous=order_id)

    def _replace(self, order: Order) -> None:
        """Cancel the open protective order and place the stop the operation now says."""
        old_id = order.client_order_id
        self._cancel(order)
        generation = (stop_generation(self.op.intent_id, old_id) or 0) + 1
        self._place(generation, f"stop moved {fmt(order.stop_price)} → {fmt(self.op.stop)}: {old_id} cancelled",
                    self._held(), previous=old_id)

    def _cancel(self, order: Order) -> Order | None:
        """Cancel an open protective order; close instead if it filled meanwhile; raise if it is still open."""
        order_id = order.client_order_id
        self.store.ensure_locks()  # a cancel is the one exchange action not recorded in the store first
        try:
            after = self.exchange.cancel_order(self.op.symbol, order_id)
        except OrderRejected:  # -2011 or no longer open: it may have filled meanwhile, so look it up
            after = self.exchange.get_order(self.op.symbol, order_id)
        if after is None:
            return None
        part = self._part_of(order_id)
        if part is not None:  # a ladder part's OCO: what it filled (meanwhile, or before) is booked as its part
            self._settle_part(part, after)
        elif after.status is OrderStatus.FILLED:
            self._close_filled(after)
        if after.status in OPEN_STATUSES:
            raise ExchangeError(f"cancelling {order_id} did not take: {self.exchange.name} still shows it "
                                f"{after.status.value}; the next check tries again")
        self._mirror(after)
        return after

    def _place(self, generation: int, why: str, quantity: Decimal, *, previous: str, part: int | None = None) -> Order:
        """Place the operation's stop (OCO with its target) under this generation's id, looking it up first.

        With part, that ladder part's OCO (`-P<i>S<generation>`): the operation's stop, the part's target.
        """
        op, info = self.op, self.info
        order_id = client_order_id(op.intent_id, OrderRole.STOP, generation, part=part)
        target = op.target if part is None else self._part_target(part)
        placed = self.exchange.get_order(op.symbol, order_id)
        if placed is None:
            safe_to_send(self.store, self.exchange, self.intent, order_id, "protective stop")
            price = self.market.last_price(op.symbol).price
            if part is None and info.below_minimum(quantity, price):
                self._leave_as_dust(quantity, price, why)
            if (price - op.stop) * op.side.sign <= 0:
                self._exit_instead(self._stop_reason(op.stop), f"{why}; the price {fmt(price)} is already through "
                                   f"the stop {fmt(op.stop)}, so a new stop would trigger at once")
            if part is not None and (price - target) * op.side.sign >= 0 and not self.exiting:
                return self._sell_part(part, f"{why}; the price {fmt(price)} is already at or beyond its target "
                                             f"{fmt(target)}")
            if target is not None and (price - target) * op.side.sign >= 0:
                self._exit_instead(CloseReason.TARGET, f"{why}; the price {fmt(price)} is already beyond the "
                                   f"target {fmt(target)}")
            limit = stop_limit_price(op.side, op.stop, info.round_price, self.account.stop_limit_offset_percent)
            try:
                placed = self._send_once(order_id, (f"part {part}: " if part else "")
                                         + f"stop {op.side.opposite.value} {fmt(quantity)} @ {fmt(op.stop)} "
                                         f"limit {fmt(limit)}" + (f", target {fmt(target)}" if target else "")
                                         + f" ({order_id}): {why}",
                                         lambda: self.exchange.place_stop_order(
                                             op.symbol, op.side.opposite, quantity, op.stop, limit, order_id,
                                             target_price=target, intent_id=op.intent_id))
            except (OrderRejected, InsufficientBalance) as e:
                self._refused(order_id, why, e)
            except RobsonError as e:  # lost (it may exist: never exit on a guess), rate limited, out of reach
                raise Unprotected(f"UNPROTECTED: {fmt(quantity)} {info.base_asset} held and no stop on "
                                  f"{self.exchange.name.capitalize()}: {why}; placing {order_id} failed: {e}",
                                  hint=f"the next check places it (never twice); {CLOSE_IT_YOURSELF}",
                                  cause=e) from None
        self._adopt(placed, why, previous=previous)
        return placed

    def _refused(self, order_id: str, why: str, error: RobsonError) -> NoReturn:
        """Exit where the new stop was refused: as a stop (or trailing) exit if the price crossed it meanwhile."""
        op, refused = self.op, f"{why}; the new stop {order_id} was refused: {error}"
        try:
            price: Decimal | None = self.market.last_price(op.symbol).price
        except RobsonError:
            price = None
        if price is not None and (price - op.stop) * op.side.sign <= 0:
            # The stop level was crossed between the check and the place: the books say stop, not a placement failure.
            self._exit_instead(self._stop_reason(op.stop), f"{refused}; the price {fmt(price)} crossed the stop "
                               f"{fmt(op.stop)} meanwhile")
        self._exit_instead(CloseReason.STOP_PLACEMENT_FAILED, refused)

    def _exit_instead(self, reason: CloseReason, why: str) -> NoReturn:
        """Exit at market where no stop can be placed; while already exiting, raise: the rest has no stop."""
        if self.exiting:
            raise Unprotected(f"UNPROTECTED: {why}: the rest ({fmt(self._held())} {self.info.base_asset}) has no stop "
                              f"on {self.exchange.name.capitalize()}; the next check retries the exit",
                              hint="look at the position on Binance and close it there if it cannot wait")
        self._exit_at_market(reason, why)

    def _adopt(self, placed: Order, why: str, *, previous: str | None) -> None:
        """Mirror a protective order the exchange holds and audit it once (STOP_PLACED)."""
        order_id, op = placed.client_order_id, self.op
        target = f", target {fmt(placed.target_price)}" if placed.target_price else ""
        message = (f"stop re-placed: {why}; now {order_id} {placed.type.value} {fmt(placed.quantity)} "
                   f"@ {fmt(placed.stop_price)}{target}")
        with self.store.transaction() as tx:
            self._mirror_in(tx, placed)
            if not any(e.kind is AuditKind.STOP_PLACED and e.data.get("client_order_id") == order_id
                       for e in tx.audit_trail(intent_id=op.intent_id)):
                tx.record(AuditEvent(at=self.clock.now(), kind=AuditKind.STOP_PLACED, intent_id=op.intent_id,
                                     operation_id=op.id, message=message,
                                     data={"client_order_id": order_id, "replaces": previous}))
        self.notes.append(message)

    # --- trailing -------------------------------------------------------------------------------

    def _trail(self, order_id: str | None) -> None:
        """Move the stop over the candles closed since the last check and write it, before the order is replaced."""
        op = self.op
        if self.strategy is None or not self.strategy.trails:
            self._write(dataclasses.replace(op, last_checked_at=self.now), [], order_id)
            return
        if isinstance(self.candles, MarketDataError) or self.candles is None:
            self.notes.append(f"no candles, so the stop was not trailed this time: {self.candles}")
            return
        self.timeframe, candles = self.candles
        settings = MonitorSettings(timeframe=self.timeframe, fee_rate=self.account.fee_rate,
                                   tick_size=self.info.tick_size, trailing=True)
        # Only the exchange's fill closes a live operation: walk without the target, and walk on past a candle
        # that touched the stop (its fill, if any, is the exchange's to report).
        walked, moves = dataclasses.replace(op, target=None), []
        while True:
            result = walk_candles(walked, candles, settings, now=self.now)
            moves += result.moves
            walked = dataclasses.replace(walked, stop=result.stop, last_checked_at=result.last_checked_at)
            if result.exit is None:
                break
        self.moves += tuple(moves)  # after the moves a target's fill made this check, if any
        self.examined = candles_examined(op, candles, self.timeframe, WalkResult(tuple(moves), None, walked.stop,
                                                                          walked.last_checked_at))
        updated = dataclasses.replace(op, stop=walked.stop, last_checked_at=walked.last_checked_at)
        if moves:
            updated = dataclasses.replace(updated, updated_at=self.now)
        self._write(updated, moves, order_id)

    def _write(self, updated: Operation, moves: list[StopMove], order_id: str | None) -> None:
        """Write the trailed stop before the protective order is replaced (order_id None: every part's OCO is)."""
        if updated == self.op:
            return
        op = self.op
        if order_id is None:
            order_id, next_id = "each part's OCO", "its next generation"
        else:
            next_id = client_order_id(op.intent_id, OrderRole.STOP, (stop_generation(op.intent_id, order_id) or 0) + 1)
        with self.store.transaction() as tx:
            if tx.get_operation(op.id) != op:
                raise _Changed(op.id)
            for move in moves:
                event = stop_moved_event(op, move, order_id)  # the paper monitor's record, plus the replacing order
                tx.record(dataclasses.replace(event, message=f"{event.message}; {order_id} is replaced by {next_id}",
                                              data=event.data | {"new_client_order_id": next_id}))
            tx.update_operation(updated, expected_status=OperationStatus.ACTIVE)
        self.op = updated

    # --- closing ----------------------------------------------------------------------------------

    def _stop_reason(self, stop: Decimal | None) -> CloseReason:
        trailed = stop is not None and (stop - self.op.initial_stop) * self.op.side.sign > 0
        return CloseReason.TRAILING if trailed and self.strategy is not None and self.strategy.trails else (
            CloseReason.STOP)

    def _close_filled(self, order: Order) -> None:
        """Close at the protective order's fill: the target leg if it filled at or beyond the target, else the stop."""
        if self._at_target(order):
            self._close(order, CloseReason.TARGET, order.target_price, "target leg", "")
        else:
            self._close(order, self._stop_reason(order.stop_price), order.stop_price, "stop", "")

    def _at_target(self, order: Order) -> bool:
        """True when the protective order's fills are its OCO target leg's (at or beyond the target)."""
        # A LIMIT_MAKER take-profit never fills worse than its price; the stop leg sits on the other side of it.
        return (order.target_price is not None and order.average_price is not None
                and (order.average_price - order.target_price) * self.op.side.sign >= 0)

    def _exit_at_market(self, reason: CloseReason, why: str) -> NoReturn:
        """Sell (buy back) what is held at market under the exit generations (`-X`, `-X1` …) and close when all is sold.

        Each generation is looked up before it is sent. A thin book may fill one only in part (EXPIRED):
        the next generation sells the rest at once, up to MAX_EXIT_SENDS sends; what is still held then
        gets a protective stop and ExchangeError says so, the operation staying ACTIVE for the next check.
        """
        if self.by_parts and not self.exiting:  # every part's OCO locks base the exit sells: cancel them first
            self._end_protection()
        op = self.op
        self.exiting = True
        wanted = self._held()
        try:
            price: Decimal | None = self.prices.of(op.symbol)
        except RobsonError:  # no price: the exit is still tried; only LOT_SIZE can tell dust then
            price = None
        if self.info.below_minimum(wanted, price):
            self._leave_as_dust(wanted, price, why, reason)
        exit_id = latest_order_id(self.store, op.intent_id, OrderRole.EXIT)
        sends, refusal = 0, ""
        while True:
            order = self.exchange.get_order(op.symbol, exit_id)
            if order is None:
                try:
                    order = self._send_exit(exit_id, reason, why)
                except (OrderRejected, InsufficientBalance) as e:
                    refusal = f"; {exit_id} was refused: {e}"
                    break
                sends += 1
            self._settle_exit(order, reason, why)  # closes (raises _Closed) once everything is sold
            if sends >= MAX_EXIT_SENDS:
                break
            exit_id = client_order_id(op.intent_id, OrderRole.EXIT,
                                      (order_generation(op.intent_id, OrderRole.EXIT, exit_id) or 0) + 1)
        self._protect_rest(why, f"exit at market filled {fmt(wanted - self._held())} of {fmt(wanted)}{refusal}")

    def _send_exit(self, exit_id: str, reason: CloseReason, why: str) -> Order:
        """Send one exit generation for what is held, stamped first; raise AnswerLost while an earlier send may arrive."""
        op = self.op
        safe_to_send(self.store, self.exchange, self.intent, exit_id, "exit order")
        quantity = self._held()  # what earlier protective orders and exits did not already sell
        return self._send_once(exit_id, f"exit MARKET {op.side.opposite.value} {fmt(quantity)} {op.symbol} "
                               f"({exit_id}): {why}",
                               lambda: self.exchange.place_market_order(op.symbol, op.side.opposite, quantity, exit_id,
                                                                        intent_id=op.intent_id),
                               reason=reason.value, why=why)

    def _settle_exit(self, order: Order, reason: CloseReason, why: str) -> None:
        """Close if this exit sold the rest; else record what it filled (once) and return."""
        if order.status in OPEN_STATUSES:
            self._mirror(order)
            raise ExchangeError(f"the exit {order.client_order_id} is still {order.status.value} on "
                                f"{self.exchange.name.capitalize()}; the next check looks at it again")
        sold_before = sum((o.filled_quantity for o in self._partly_filled(besides=order.client_order_id)), Decimal(0))
        rest = self.info.round_quantity(self.op.held - sold_before - order.filled_quantity)
        if order.filled_quantity and self._unsellable(rest, order.average_price):
            if rest:
                why = f"{why}; {fmt(rest)} {self.info.base_asset} left, below what {self.exchange.name} trades"
            self._close(order, reason, None, "exit MARKET", why)
        with self.store.transaction() as tx:
            self._mirror_in(tx, order)
            if order.filled_quantity and not any(e.kind is AuditKind.ORDER_FILLED
                                                 and e.data.get("client_order_id") == order.client_order_id
                                                 for e in tx.audit_trail(intent_id=self.op.intent_id)):
                tx.record(AuditEvent(
                    at=order.updated_at, kind=AuditKind.ORDER_FILLED, intent_id=self.op.intent_id,
                    operation_id=self.op.id,
                    message=f"exit MARKET {order.side.value} filled {fmt(order.filled_quantity)} of "
                            f"{fmt(order.quantity)} @ {fmt(order.average_price)} fee "
                            f"{fmt_amount(fee_in_quote(order, self.info))} {self.op.quote_asset} ({order.client_order_id}, "
                            f"{order.status.value}): {fmt(rest)} still held",
                    data={"client_order_id": order.client_order_id, "quantity": fmt(order.quantity),
                          "filled_quantity": fmt(order.filled_quantity), "held": fmt(rest)},
                ))
        self.notes.append(f"{order.client_order_id} filled {fmt(order.filled_quantity)} of {fmt(order.quantity)} "
                          f"({order.status.value})")

    def _unsellable(self, quantity: Decimal, price: Decimal | None) -> bool:
        """True when nothing is left, or too little for the exchange's LOT_SIZE or minimum order value."""
        return self.info.below_minimum(quantity, price)

    def _leave_as_dust(self, held: Decimal, price: Decimal | None, why: str,
                       reason: CloseReason | None = None) -> NoReturn:
        """End an operation whose holding no order can trade (raises _Closed), instead of retrying every tick.

        What earlier generations sold closes it at their fills, the rest noted as dust; with nothing sold
        the operation is DUST: left in the wallet, no P&L booked, no longer watched.
        """
        op = self.op
        dust = f"{self.info.dust_reason(held, price)}, so no order can protect or sell it"
        sold = self._partly_filled()
        if sold:
            last = max(sold, key=lambda o: o.updated_at)
            exit_reason = reason or (CloseReason.TARGET if self._at_target(last) else self._stop_reason(last.stop_price))
            self._close(last, exit_reason, None, "last fill", f"{why}; the rest is dust: {dust}" if held > 0 else why)
        dusty = op.leave_as_dust(at=self.now)
        message = f"left as dust: {why}; {dust}; it stays in the wallet, no P&L booked, no longer watched"
        with self.store.transaction() as tx:
            if tx.get_operation(op.id) != op:
                raise _Changed(op.id)
            tx.update_operation(dusty, expected_status=OperationStatus.ACTIVE)
            tx.record(AuditEvent(at=self.now, kind=AuditKind.LEFT_AS_DUST, intent_id=op.intent_id, operation_id=op.id,
                                 message=message, data={"quantity": fmt(held), "price": fmt(price)}))
        self.op = dusty
        self.notes.append(message)
        raise _Closed(self._report(None))

    def _protect_rest(self, why: str, said: str) -> NoReturn:
        """Place a stop for what the exits did not sell and raise ExchangeError saying so (the next check retries)."""
        held = self._held()
        previous = protective_order_id(self.store, self.op.intent_id)
        generation = (stop_generation(self.op.intent_id, previous) or 0) + 1
        placed = self._place(generation, f"{why}; {said}", held, previous=previous)
        raise ExchangeError(f"{why}: {said}; the rest ({fmt(held)} {self.info.base_asset}) is protected by "
                            f"{placed.client_order_id} (stop @ {fmt(placed.stop_price)}); the next tick retries",
                            hint=f"operation {self.op.id} stays ACTIVE until the rest is sold")

    def _close(self, order: Order, reason: CloseReason, trigger: Decimal | None, what: str, why: str) -> None:
        op = self.op
        earlier = self._partly_filled(besides=order.client_order_id)
        fills = [*earlier, order]
        sold = sum((o.filled_quantity for o in fills), Decimal(0))
        # Every generation's fills: the close price is their quantity-weighted average, the fee their sum.
        price = sum((o.filled_quantity * o.average_price for o in fills), Decimal(0)) / sold
        fee = sum((fee_in_quote(o, self.info) for o in fills), Decimal(0))
        closed = op.close(exit_price=price, exit_fee=fee, reason=reason, at=order.updated_at)
        if earlier:
            why = "; ".join(filter(None, [why, "with earlier partial fills " + ", ".join(
                f"{fmt(o.filled_quantity)} @ {fmt(o.average_price)} ({o.client_order_id})" for o in earlier)
                + f": {fmt(sold)} sold at an average of {fmt(price)}"]))
        r = r_multiple(closed)
        with self.store.transaction() as tx:
            if tx.get_operation(op.id) != op:
                raise _Changed(op.id)
            self._mirror_in(tx, order)
            tx.update_operation(closed, expected_status=OperationStatus.ACTIVE)
            tx.record(AuditEvent(
                at=closed.closed_at, kind=AuditKind.ORDER_FILLED, intent_id=op.intent_id, operation_id=op.id,
                message=f"{what} {order.side.value} {fmt(order.filled_quantity)} filled @ {fmt(order.average_price)} "
                        f"fee {fmt_amount(fee_in_quote(order, self.info))} {op.quote_asset} ({order.client_order_id})",
                data={"client_order_id": order.client_order_id},
            ))
            tx.record(AuditEvent(
                at=closed.closed_at, kind=AuditKind.CLOSED, intent_id=op.intent_id, operation_id=op.id,
                message=f"closed {self.closer}: {reason.value} @ {fmt(closed.exit_price)} fee {fmt_amount(fee)}, "
                        f"realized P&L {fmt(closed.realized_pnl, 2)} {op.quote_asset}"
                        + (f" ({fmt(r, 2)} R)" if r is not None else "") + (f" — {why}" if why else ""),
                data={"reason": reason.value, "price": fmt(closed.exit_price), "fee": fmt(fee),
                      "realized_pnl": fmt(closed.realized_pnl), "client_order_id": order.client_order_id},
            ))
        self.op = closed
        length = timeframe_ms(REPORT_TIMEFRAME)
        exit_ = Exit(at=closed.closed_at, price=closed.exit_price, trigger_price=trigger or closed.exit_price, fee=fee,
                     reason=reason, candle_open_time=datetime_to_ms(closed.closed_at) // length * length)
        if why:
            self.notes.append(why)
        raise _Closed(self._report(exit_))

    # --- records ------------------------------------------------------------------------------------

    def _report(self, exit_: Exit | None) -> OperationCheck:
        return OperationCheck(self.before, self.op, self.timeframe or "exchange", self.examined, self.moves, exit_,
                              tuple(self.notes))

    def _mirror(self, order: Order) -> None:
        with self.store.transaction() as tx:
            self._mirror_in(tx, order)

    def _mirror_in(self, tx, order: Order) -> None:
        """Keep the store's copy of an exchange order up to date, tied to this intent and operation."""
        order = dataclasses.replace(order, intent_id=self.op.intent_id, operation_id=self.op.id)
        stored = tx.get_order(order.client_order_id)
        if stored is None:
            tx.add_order(order)
        elif stored != order:
            tx.update_order(order)

    def _partly_filled(self, besides: str | None = None) -> list[Order]:
        """Return the stored orders that sold part of the position: any stop generation (an OCO's record carries its
        target leg's fills) and any exit generation."""
        with self.store.read() as session:
            orders = session.orders_for_intent(self.op.intent_id)
        intent_id = self.op.intent_id
        return [o for o in orders if o.client_order_id != besides and o.filled_quantity > 0
                and (order_generation(intent_id, OrderRole.STOP, o.client_order_id) is not None
                     or order_generation(intent_id, OrderRole.EXIT, o.client_order_id) is not None)]

    def _held(self) -> Decimal:
        """Return the quantity still held: the operation's, less what stops, target legs and exits sold, on the step."""
        sold = sum((o.filled_quantity for o in self._partly_filled()), Decimal(0))
        return self.info.round_quantity(self.op.held - sold)

    def _stored(self, order_id: str) -> bool:
        with self.store.read() as session:
            return session.get_order(order_id) is not None

    def _moving(self, order_id: str) -> bool:
        """True when a stop or target move named order_id as the order to replace (so robson cancelled it)."""
        with self.store.read() as session:
            return any(e.kind in (AuditKind.STOP_MOVED, AuditKind.TARGET_MOVED) and e.data.get("client_order_id") == order_id
                       and e.data.get("new_client_order_id") for e in session.audit_trail(intent_id=self.op.intent_id))

    def _last_send(self, order_id: str) -> AuditEvent | None:
        return last_send(self.store, self.op.intent_id, order_id)

    def _send_once(self, order_id: str, message: str, place: Callable[[], Order], **extra: str) -> Order:
        """Record the send with the exchange's clock, then send (execute's lookup rule; a refusal is recorded too)."""
        return send_once(self.store, self.exchange, self.clock, self.intent, order_id, message, place,
                         operation_id=self.op.id, **extra)

